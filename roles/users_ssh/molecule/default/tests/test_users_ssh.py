"""users_ssh on a droplet-like container whose sshd_config and a drop-in turn root and password login
on (see prepare.yml). Everything that matters is checked the way a client or sshd sees it: real
SSH logins from the host, `sshd -T`, ssh-audit, sudo run by the deploy user."""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import assert_no_changes, assert_rejected_naming, journal
from tests.lib.hostile import PATTERNS, named, spoil
from tests.lib.ssh import HARDENED_POLICY, assert_password_login_is_refused, container_address, ssh, ssh_audit

USER = "gigaflask"
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
KEY_FROM_FILE = EPHEMERAL / "key_from_file"
KEY_FROM_STRING = EPHEMERAL / "key_from_string"
KEY_STRAY = EPHEMERAL / "key_stray"
# openssl passwd -6 -salt gigaflasksalt Sudo-pass-42
PASSWORD_HASH = ("$6$gigaflasksalt$Y7pY1LmhPHkAq/aQm4BL3UnImooqSd5vDkYuUhuk39HbhF4nQ4zfRqM15Fz0i9JUj0ddpH"
                 "F9Gqu8rkYMa3g2F0")


# What `sshd -T` must show with the default algorithm lists, by release: the lists of that release's
# hardened ssh-audit policy, in its order, and the host keys in the order of their algorithms (sshd
# offers them in HostKey order).
ALGORITHMS = {
    "focal": {
        "kexalgorithms": ["curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,"
                          "diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256"],
        "ciphers": ["chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
                    "aes256-ctr,aes192-ctr,aes128-ctr"],
        "macs": ["hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com"],
        "hostkeyalgorithms": ["rsa-sha2-512,rsa-sha2-256,ssh-ed25519"],
        "hostkey": ["/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"],
    },
    "jammy": {
        "kexalgorithms": ["sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
                          "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,"
                          "diffie-hellman-group-exchange-sha256"],
        "ciphers": ["chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr,aes192-ctr,"
                    "aes128-gcm@openssh.com,aes128-ctr"],
        "macs": ["hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com"],
        "hostkeyalgorithms": ["ssh-ed25519,rsa-sha2-512,rsa-sha2-256"],
        "hostkey": ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"],
    },
    "noble": {
        "kexalgorithms": ["sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
                          "diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256,"
                          "diffie-hellman-group16-sha512"],
        "ciphers": ["chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr,aes192-ctr,"
                    "aes128-gcm@openssh.com,aes128-ctr"],
        "macs": ["hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com"],
        "hostkeyalgorithms": ["ssh-ed25519,rsa-sha2-512,rsa-sha2-256"],
        "hostkey": ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"],
    },
}


# OpenSSH 8.7 made ChallengeResponseAuthentication an alias of KbdInteractiveAuthentication: only
# focal's 8.2 still prints it in `sshd -T`; elsewhere kbdinteractiveauthentication alone says it.
CHALLENGE_RESPONSE = {"focal": ["no"], "jammy": None, "noble": None}


@pytest.fixture(scope="module")
def address(host):
    return container_address(host.backend.get_hostname())


@pytest.fixture(scope="module")
def release(host):
    return host.system_info.codename


def effective(host, user=None):
    """`sshd -T` as a dict of keyword -> list of values (sshd prints repeated keywords once per value)."""
    cmd = "/usr/sbin/sshd -T"
    if user:
        cmd += f" -C user={user},host=client.example,addr=198.51.100.7"
    out = host.check_output(cmd)
    settings = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


def sha256(host, path):
    return host.check_output(f"sha256sum {path}").split()[0]


# Every file the role writes (or that changes with the deploy user), to prove a refused run left
# the host exactly as it was.
WRITTEN = ["/etc/ssh/sshd_config", f"/etc/sudoers.d/90-{USER}", f"/home/{USER}/.ssh/authorized_keys",
           "/etc/ssh/ssh_host_rsa_key.pub", "/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/moduli",
           "/etc/passwd", "/etc/shadow", "/etc/group"]


def written(host):
    return host.check_output("sha256sum " + " ".join(WRITTEN) + "; ls -la --time-style=full-iso /etc/ssh "
                             f"/etc/sudoers.d /home/{USER}/.ssh")


@pytest.mark.parametrize("user", [None, "root", USER])
def test_effective_sshd_settings_win_over_the_planted_conflicts(host, release, user):
    # prepare.yml planted these; they must still be there, and lose.
    planted = host.file("/etc/ssh/sshd_config.d/50-cloud-init.conf").content_string
    assert "PermitRootLogin yes" in planted and "PasswordAuthentication yes" in planted
    sshd = effective(host, user)
    expected = {
        "permitrootlogin": ["no"], "passwordauthentication": ["no"],
        "kbdinteractiveauthentication": ["no"], "challengeresponseauthentication": CHALLENGE_RESPONSE[release],
        "pubkeyauthentication": ["yes"], "permitemptypasswords": ["no"], "x11forwarding": ["no"],
        "maxauthtries": ["3"], "logingracetime": ["30"], "clientaliveinterval": ["300"],
        "clientalivecountmax": ["2"], "authorizedkeysfile": [".ssh/authorized_keys"], "port": ["22"],
        **ALGORITHMS[release],
    }
    actual = {key: sshd.get(key) for key in expected}
    assert actual == expected


def test_ssh_audit_hardened_policy_of_the_release_passes(address, host, release):
    audit = ssh_audit(address, HARDENED_POLICY[release])
    assert audit.returncode == 0 and "Passed" in audit.stdout, audit.stdout + audit.stderr + journal(host, "ssh")


def test_server_offers_only_an_rsa_4096_and_an_ed25519_host_key(address):
    scan = subprocess.run(["ssh-keyscan", "-T", "10", "-t", "rsa,ecdsa,ed25519,dsa", address],
                          capture_output=True, text=True, check=False)
    keys = [line.split()[1] for line in scan.stdout.splitlines() if line and not line.startswith("#")]
    assert sorted(keys) == ["ssh-ed25519", "ssh-rsa"], scan.stdout + scan.stderr
    rsa = next(line for line in scan.stdout.splitlines() if " ssh-rsa " in line)
    bits = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=rsa.split(None, 1)[1], capture_output=True,
                          text=True, check=True).stdout.split()[0]
    assert bits == "4096"


def test_no_group_exchange_modulus_below_3072_bits_is_left(host):
    sizes = [int(line.split()[4]) + 1 for line in host.file("/etc/ssh/moduli").content_string.splitlines()
             if line and not line.startswith("#")]
    assert sizes and min(sizes) >= 3072, sorted(set(sizes))


@pytest.mark.parametrize("key", [KEY_FROM_FILE, KEY_FROM_STRING], ids=["key-file", "key-string"])
def test_deploy_user_logs_in_with_each_authorized_key(address, host, key):
    login = ssh(address, USER, "id -un; echo $SHELL; id -Gn; echo $HOME", key=key)
    assert login.returncode == 0, login.stderr + journal(host, "ssh")
    name, shell, groups, home = login.stdout.splitlines()
    assert (name, shell, home) == (USER, "/bin/bash", f"/home/{USER}")
    assert "sudo" in groups.split()


def test_deploy_user_runs_sudo_without_a_password(address):
    sudo = ssh(address, USER, "sudo -n id -u", key=KEY_FROM_FILE)
    assert sudo.returncode == 0 and sudo.stdout.strip() == "0", sudo.stdout + sudo.stderr


def test_sudoers_drop_in_is_valid_and_private(host):
    check = host.run("visudo -c")
    assert check.rc == 0, check.stdout + check.stderr
    sudoers = host.file(f"/etc/sudoers.d/90-{USER}")
    assert (sudoers.user, sudoers.group, sudoers.mode) == ("root", "root", 0o440)


def test_key_not_listed_is_refused_in_exclusive_mode(address):
    stray = ssh(address, USER, key=KEY_STRAY)
    assert stray.returncode == 255 and "Permission denied (publickey)" in stray.stderr, stray.stderr


def test_ssh_directory_and_authorized_keys_are_private(host):
    ssh_dir = host.file(f"/home/{USER}/.ssh")
    keys = host.file(f"/home/{USER}/.ssh/authorized_keys")
    assert (ssh_dir.user, ssh_dir.mode) == (USER, 0o700)
    assert (keys.user, keys.mode) == (USER, 0o600)


def test_root_login_is_refused_even_with_its_authorized_key(address, host):
    # prepare.yml gave root this key, as a droplet's metadata does: the refusal is sshd's policy.
    root_key = KEY_FROM_STRING.with_suffix(".pub").read_text().split()[1]
    assert root_key in host.file("/root/.ssh/authorized_keys").content_string
    root = ssh(address, "root", key=KEY_FROM_STRING)
    assert root.returncode == 255 and "Permission denied (publickey)" in root.stderr, root.stderr
    assert "ROOT LOGIN REFUSED" in journal(host, "ssh", lines=200)


def test_password_login_is_refused_even_with_the_right_password(address, host):
    assert_password_login_is_refused(host, address, USER)


def test_check_mode_on_converged_host_changes_nothing(ansible_playbook):
    run = ansible_playbook("converge.yml", check=True, diff=True)
    assert_no_changes(run)


def test_existing_key_satisfies_the_lockout_guard_when_not_exclusive(ansible_playbook):
    # No key in the variables, but the deploy user already has keys on the host: nothing to do.
    # `users`: the guard and the key tasks; the sshd tasks have nothing to do with it.
    run = ansible_playbook("converge.yml", tags="users", extra_vars={
        "users_ssh_authorized_keys": [], "users_ssh_authorized_key_files": [],
        "users_ssh_authorized_keys_exclusive": False})
    assert_no_changes(run)


@pytest.mark.parametrize("extra_vars, variables", [
    ({"users_ssh_user": "probe", "users_ssh_authorized_keys": [], "users_ssh_authorized_key_files": []},
     ["users_ssh_authorized_keys", "users_ssh_authorized_key_files"]),
    ({"users_ssh_user": "probe", "users_ssh_port": "twenty-two"}, ["users_ssh_port"]),
    ({"users_ssh_user": "probe", "users_ssh_sudo_mode": "sometimes"}, ["users_ssh_sudo_mode"]),
    ({"users_ssh_user": "probe", "users_ssh_ciphers": ["rot13-cbc"]}, ["users_ssh_ciphers"]),
    ({"users_ssh_user": "root"}, ["users_ssh_user"]),
    ({"users_ssh_user": "probe", "users_ssh_authorized_key_files": ["/nonexistent/key.pub"]},
     ["users_ssh_authorized_key_files"]),
    ({"users_ssh_user": "probe", "users_ssh_authorized_key_files": [str(KEY_STRAY)]},
     ["users_ssh_authorized_key_files"]),
], ids=["exclusive-and-no-keys", "non-numeric-port", "unknown-sudo-mode", "cipher-sshd-rejects", "root-as-deploy-user",
        "missing-key-file", "private-key-file"])
def test_bad_input_fails_before_any_change(ansible_playbook, host, extra_vars, variables):
    before = written(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    for variable in variables:
        assert_rejected_naming(run, variable)
    assert not host.user("probe").exists
    assert written(host) == before
    assert host.service("ssh").is_running


def test_a_private_key_file_is_refused_without_showing_it(ansible_playbook):
    run = ansible_playbook("converge.yml", extra_vars={"users_ssh_authorized_key_files": [str(KEY_STRAY)]})
    private = KEY_STRAY.read_text().splitlines()[1]
    assert run.rc != 0 and private not in run.output, run.describe()


# Each value the role writes somewhere (sshd_config, sudoers, authorized_keys, the user database,
# apt), spoiled one hostile class at a time. Exceptions, each harmless where the value goes:
# a key line has spaces (type, key, comment), so a space only adds to its comment (and the test
# checks that this one is accepted).
def good_values():
    return {
        "users_ssh_user": USER, "users_ssh_shell": "/bin/bash", "users_ssh_password_hash": PASSWORD_HASH,
        # type and key, no comment: what follows the key is the comment
        "users_ssh_authorized_keys": [" ".join(KEY_FROM_STRING.with_suffix(".pub").read_text().split()[:2])],
        "users_ssh_authorized_key_files": [str(KEY_FROM_FILE.with_suffix(".pub"))],
        "users_ssh_allow_users": [USER], "users_ssh_allow_groups": ["sudo"],
        "users_ssh_kex_algorithms": ["curve25519-sha256"], "users_ssh_ciphers": ["aes256-gcm@openssh.com"],
        "users_ssh_macs": ["hmac-sha2-256-etm@openssh.com"], "users_ssh_host_key_algorithms": ["ssh-ed25519"],
        "users_ssh_packages": ["openssh-server"],
    }


HARMLESS = {("users_ssh_authorized_keys", "space")}


@pytest.mark.parametrize("cls", PATTERNS)
def test_hostile_values_fail_naming_each_variable_before_any_change(ansible_playbook, host, cls):
    extra_vars = {name: [spoil(v, cls) for v in good] if isinstance(good, list) else spoil(good, cls)
                  for name, good in good_values().items() if (name, cls) not in HARMLESS}
    before = written(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert run.rc != 0 and run.changed == 0, run.describe()
    unnamed = [name for name in extra_vars if not named(run, name)]
    assert not unnamed, run.describe()
    if cls == "space":
        assert not named(run, "users_ssh_authorized_keys"), run.describe()
    assert written(host) == before


@pytest.mark.parametrize("drop_in, keyword", [
    ("Match User root\n  PermitRootLogin yes\n", "PermitRootLogin"),
    ("Match Group sudo\n  PasswordAuthentication yes\n", "PasswordAuthentication"),
    ("Match Address 10.0.0.0/8,192.168.0.0/16\n  PasswordAuthentication yes\n", "PasswordAuthentication"),
], ids=["match-user", "match-group", "match-address"])
def test_match_block_that_loosens_logins_stops_the_role_before_writing(ansible_playbook, host, drop_in, keyword):
    path = "/etc/ssh/sshd_config.d/60-loosen.conf"
    host.run_expect([0], f"printf '{drop_in}' > {path}")
    try:
        before = written(host)
        run = ansible_playbook("converge.yml")
        after = written(host)
    finally:
        host.run_expect([0], f"rm -f {path}")
    assert run.rc != 0 and run.changed == 0, run.describe()
    assert any(f"{path} line 2" in message and f"sets {keyword} " in message
               for message in run.failure_messages), run.describe()
    assert after == before


def test_match_block_that_only_restricts_sessions_is_accepted(ansible_playbook, host):
    path = "/etc/ssh/sshd_config.d/60-sftp.conf"
    host.run_expect([0], f"printf 'Match Group sftponly\\n  ForceCommand internal-sftp\\n  "
                         f"AllowTcpForwarding no\\n' > {path}")
    try:
        run = ansible_playbook("converge.yml", check=True)
    finally:
        host.run_expect([0], f"rm -f {path}")
    assert_no_changes(run)
