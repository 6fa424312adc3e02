"""Real SSH from the controller into test containers: logins, refusals, password attempts, audits.

Every call is a fresh `ssh` process with no user configuration (-F /dev/null), no agent, no known
hosts and no connection sharing, so each result says what the server decided for exactly the
credentials given.
"""
import shutil
import subprocess
import sys
import time
from pathlib import Path

COMMON_OPTIONS = [
    "IdentitiesOnly=yes",
    "IdentityAgent=none",
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "GlobalKnownHostsFile=/dev/null",
    "ControlMaster=no",
    "ControlPath=none",
    "ConnectTimeout=10",
]


def _options(*extra):
    args = ["-F", "/dev/null"]
    for option in [*COMMON_OPTIONS, *extra]:
        args += ["-o", option]
    return args

# ssh-audit's built-in hardened server policy for each Ubuntu release (`ssh-audit -L`), by codename:
# the one users_ssh's default algorithms must pass on that release.
HARDENED_POLICY = {
    "focal": "Hardened Ubuntu Server 20.04 LTS (version 5)",
    "jammy": "Hardened Ubuntu Server 22.04 LTS (version 6)",
    "noble": "Hardened Ubuntu Server 24.04 LTS (version 2)",
}

# ufw's `limit` rejects the 6th new connection from one address within 30 s; sshd then looks
# refused at the TCP level. That is the firewall working, not an answer about the credentials.
RATE_LIMIT_WINDOW = 31


def container_address(name):
    """The IPv4 address of a running container on its (first) Docker network."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        capture_output=True, text=True, check=True).stdout.split()
    assert out, f"container {name} has no IP address"
    return out[0]


def container_pid(name):
    """The host PID of a container's init, to enter its network namespace."""
    return subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def _run(cmd, timeout=60, retry_when_rate_limited=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if retry_when_rate_limited and proc.returncode == 255 and "Connection refused" in proc.stderr:
        time.sleep(RATE_LIMIT_WINDOW)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    return proc


def ssh(address, user, command="true", *, key=None, port=22, options=(), **kwargs):
    """Run `command` as `user` over a real SSH connection; return the CompletedProcess."""
    cmd = ["ssh", *_options("BatchMode=yes", "LogLevel=ERROR"), "-p", str(port), "-l", user]
    cmd += ["-i", str(key)] if key else ["-o", "PubkeyAuthentication=no"]
    cmd += list(options) + [address, command]
    return _run(cmd, **kwargs)


def ssh_with_password(address, user, password, command="true", *, port=22, **kwargs):
    """Try a password (and keyboard-interactive) login only, as a brute-forcer would."""
    sshpass = shutil.which("sshpass")
    assert sshpass, "sshpass is missing on the controller (tools/host-packages installs it)"
    cmd = [sshpass, "-p", password, "ssh",
           *_options("PubkeyAuthentication=no", "PreferredAuthentications=password,keyboard-interactive",
                     "NumberOfPasswordPrompts=1"),
           "-v", "-p", str(port), "-l", user, address, command]
    return _run(cmd, **kwargs)


def offered_methods(stderr):
    """The authentication methods the server offered, from `ssh -v` output."""
    methods = set()
    for line in stderr.splitlines():
        if "Authentications that can continue:" in line:
            methods.update(line.rsplit(":", 1)[1].strip().split(","))
    return methods


def ssh_audit(address, policy, *, port=22, netns_pid=None):
    """Run ssh-audit's built-in policy test; with netns_pid, from inside that network namespace."""
    tool = Path(sys.executable).with_name("ssh-audit")
    cmd = [str(tool) if tool.exists() else "ssh-audit", "-n", "--skip-rate-test", "-P", policy,
           "-p", str(port), address]
    if netns_pid:
        cmd = ["nsenter", "-t", str(netns_pid), "-n", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def assert_password_login_is_refused(host, address, user):
    """Give `user` a known password, try it over SSH, and assert the server refused it and offered
    only publickey. The user's previous password hash is put back whatever happens."""
    password = "Correct-horse-42"
    shadow_before = host.check_output(f"getent shadow {user}").split(":")[1]
    host.run_expect([0], f"echo '{user}:{password}' | chpasswd")
    try:
        attempt = ssh_with_password(address, user, password, "id -un")
    finally:
        host.run_expect([0], f"usermod -p '{shadow_before}' {user}")
    assert attempt.returncode != 0 and attempt.stdout.strip() != user, attempt.stdout
    assert "Permission denied (publickey)" in attempt.stderr, attempt.stderr[-2000:]
    assert offered_methods(attempt.stderr) == {"publickey"}, attempt.stderr[-2000:]
