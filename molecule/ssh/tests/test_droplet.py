"""users_ssh + hardening_ufw on a droplet reached over real SSH, through playbooks/connect.yml.

Clients (ssh, sshpass, sockets) connect from the host to the droplet's address, as from the
internet. Testinfra itself inspects the droplet with `docker exec`: root is refused over SSH now.
"""
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import assert_rejected_naming, journal
from tests.lib.droplets import docker_hosts, instances, write_inventory
from tests.lib.listeners import connects, listening
from tests.lib.ssh import HARDENED_POLICY, assert_password_login_is_refused, container_pid, ssh, ssh_audit

testinfra_hosts = docker_hosts("web")

USER = "deploy"  # users_ssh_user in molecule.yml
DROPLET = (instances("web") or [{}])[0]
FRESH = (instances("fresh") or [{}])[0]
KEY = DROPLET.get("identity_file")
ADDRESS = DROPLET.get("address")
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
# The controller's address as the droplets see it (droplets_create.yml); group_vars/web.yml lists it
# in hardening_ufw_fail2ban_ignore_ips.
CONTROLLER = (EPHEMERAL / "controller_address").read_text().strip() if (EPHEMERAL / "controller_address").exists() else ""


def effective(host, user):
    out = host.check_output(f"/usr/sbin/sshd -T -C user={user},host=client.example,addr=198.51.100.7")
    settings = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


def login_report(run):
    """{host: user} from connect.yml's report task."""
    found = {}
    for task in run.tasks:
        if task["task"]["name"] == "Report the user this run logs in as":
            for host, result in task["hosts"].items():
                found[host] = result["msg"].rsplit(" ", 1)[1]
    return found


def test_first_run_logged_in_as_root_and_later_runs_as_the_deploy_user(host):
    # sshd's own log since the droplet booted; prepare went through docker exec, so every login here
    # is a playbook run (converge, then idempotence) or this test suite.
    log = host.check_output("journalctl -u ssh -o cat --no-pager")
    events = re.findall(r"^(Invalid user (\S+)|Accepted publickey for (\S+))", log, re.M)
    sequence = [f"invalid:{invalid}" if invalid else f"accepted:{accepted}" for _, invalid, accepted in events]
    accepted = [event for event in sequence if event.startswith("accepted:")]
    # First run: the deploy user did not exist yet, so connect.yml fell back to root.
    assert accepted and accepted[0] == "accepted:root", log
    assert f"invalid:{USER}" in sequence[:sequence.index("accepted:root")], log
    # Every later run came in as the deploy user, and root never got in again.
    assert f"accepted:{USER}" in accepted, log
    assert "accepted:root" not in accepted[accepted.index(f"accepted:{USER}"):], log


def test_deploy_user_logs_in_with_the_droplet_key_and_runs_sudo():
    login = ssh(ADDRESS, USER, "id -un; echo $SHELL; sudo -n id -u", key=KEY)
    assert login.returncode == 0, login.stderr
    assert login.stdout.split() == [USER, "/bin/bash", "0"]


def test_root_login_is_refused_with_the_key_that_let_it_in_at_first(host):
    root = ssh(ADDRESS, "root", key=KEY)
    assert root.returncode == 255 and "Permission denied (publickey)" in root.stderr, root.stderr
    assert Path(KEY).with_suffix(".pub").read_text().split()[1] in host.file("/root/.ssh/authorized_keys").content_string


def test_password_login_is_refused_even_with_the_right_password(host):
    assert_password_login_is_refused(host, ADDRESS, USER)


@pytest.mark.parametrize("user", ["root", USER])
def test_effective_sshd_settings_win_over_the_droplet_defaults(host, user):
    assert "PermitRootLogin yes" in host.file("/etc/ssh/sshd_config.d/50-cloud-init.conf").content_string
    sshd = effective(host, user)
    actual = {key: sshd.get(key) for key in ("permitrootlogin", "passwordauthentication",
                                             "kbdinteractiveauthentication", "pubkeyauthentication", "port")}
    assert actual == {"permitrootlogin": ["no"], "passwordauthentication": ["no"],
                      "kbdinteractiveauthentication": ["no"], "pubkeyauthentication": ["yes"], "port": ["22"]}


def test_ssh_audit_hardened_policy_of_the_release_passes(host):
    # From inside the droplet's network namespace, to its own address: ssh-audit opens ~16
    # connections at once, which ufw's `limit` on port 22 rightly refuses from outside.
    policy = HARDENED_POLICY[host.system_info.codename]
    audit = ssh_audit(ADDRESS, policy, netns_pid=container_pid(DROPLET["instance"]))
    assert audit.returncode == 0 and "Passed" in audit.stdout, audit.stdout + audit.stderr + journal(host, "ssh")


@pytest.fixture(scope="module")
def web_listeners(host):
    """Throwaway listeners for the web ports (no nginx yet) and one the firewall must hide."""
    with listening(host, [80, 443, 8000]) as ports:
        yield ports


def test_firewall_opens_ssh_http_https_and_hides_other_listeners(host, web_listeners):
    status = host.check_output("ufw status verbose")
    assert "Status: active" in status and "Default: deny (incoming), allow (outgoing), deny (routed)" in status
    rules = sorted(" ".join(line.split()) for line in status.partition("--")[2].splitlines()[1:] if line.strip())
    assert rules == sorted(["22/tcp LIMIT IN Anywhere # SSH", "80/tcp ALLOW IN Anywhere # web",
                            "443/tcp ALLOW IN Anywhere # web", "22/tcp (v6) LIMIT IN Anywhere (v6) # SSH",
                            "80/tcp (v6) ALLOW IN Anywhere (v6) # web", "443/tcp (v6) ALLOW IN Anywhere (v6) # web"])
    assert {port: connects(ADDRESS, port) for port in (80, 443)} == {80: True, 443: True}
    inside = host.run(f"python3 -c \"import socket; socket.create_connection(('{ADDRESS}', 8000), 3)\"")
    assert inside.rc == 0, inside.stderr
    assert not connects(ADDRESS, 8000), "port 8000 is reachable from outside"


# Where each release's fail2ban action keeps its bans (hardening_ufw's vars/main.yml).
BANNED_IN = {"focal": "iptables -S f2b-sshd", "jammy": "iptables -S f2b-sshd",
             "noble": "nft list set inet f2b-table addr-set-sshd"}


def test_fail2ban_bans_an_address_that_keeps_failing(host):
    # Another container plays the attacker: five failed logins within ufw's limit (5 per 30 s).
    attacker = f"gf-attacker-{DROPLET['instance']}"
    subprocess.run(["docker", "rm", "-f", attacker], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--name", attacker, "--entrypoint", "/bin/sleep",
                    "gigaflask/ubuntu2004:sshd", "600"], capture_output=True, check=True)

    def attack(script):
        return subprocess.run(["docker", "exec", attacker, "bash", "-c", script],
                              capture_output=True, text=True, timeout=120, check=False)

    def reaches_sshd():
        return attack(f"timeout 5 bash -c 'exec 3<>/dev/tcp/{ADDRESS}/22 && head -c 7 <&3'").stdout == "SSH-2.0"

    try:
        attacker_ip = attack("hostname -I").stdout.split()[0]
        attack(f"for i in 1 2 3 4 5; do ssh -o BatchMode=yes -o StrictHostKeyChecking=no "
               f"-o ConnectTimeout=5 intruder$i@{ADDRESS} true 2>/dev/null; sleep 1; done")
        last_attempt = time.monotonic()
        banned = ""
        for _ in range(30):
            banned = host.check_output("fail2ban-client get sshd banip")
            if attacker_ip in banned.split():
                break
            time.sleep(1)
        assert attacker_ip in banned.split(), host.check_output("fail2ban-client status sshd") + journal(host, "fail2ban")
        assert attacker_ip in host.check_output(BANNED_IN[host.system_info.codename])
        # The ban holds in the kernel, not only in fail2ban's list: once ufw's 30 s rate window has
        # passed (so `limit` refuses nothing), the attacker still cannot reach sshd; unbanned, it can.
        time.sleep(max(0.0, last_attempt + 31 - time.monotonic()))
        assert not reaches_sshd(), journal(host, "fail2ban")
        host.run_expect([0], f"fail2ban-client set sshd unbanip {attacker_ip}")
        assert reaches_sshd()
    finally:
        subprocess.run(["docker", "rm", "-f", attacker], capture_output=True, check=False)


# Everything these two roles write or load on the droplet, to prove a refused run changed nothing.
WATCHED = ["/etc/ssh/sshd_config", f"/etc/sudoers.d/90-{USER}", f"/home/{USER}/.ssh/authorized_keys",
           "/etc/ufw/user.rules", "/etc/ufw/user6.rules", "/etc/fail2ban/jail.d/hardening-ufw-sshd.local",
           "/etc/passwd", "/etc/shadow"]


def watched(host):
    return host.check_output("sha256sum " + " ".join(WATCHED))


# Exclusive keys are the default: an empty key set is refused on the controller, naming both
# variables, before any connection. The deploy user stays `deploy`: it is the account these runs
# log in with.
def test_an_empty_key_set_is_refused_before_any_change(ansible_playbook, host):
    before = watched(host)
    run = ansible_playbook("converge.yml", extra_vars={"users_ssh_authorized_keys": [],
                                                       "users_ssh_authorized_key_files": []})
    for variable in ("users_ssh_authorized_keys", "users_ssh_authorized_key_files"):
        assert_rejected_naming(run, variable)
    assert watched(host) == before


def sshd_cursor(host):
    """Where sshd's journal ends now."""
    out = host.check_output("journalctl -u ssh -n 0 --show-cursor --no-pager")
    return out.rsplit("-- cursor: ", 1)[1].strip()


def sshd_log_since(host, cursor):
    return host.check_output(f"journalctl -u ssh --after-cursor '{cursor}' -o cat --no-pager")


def close_earlier_connections(host):
    """End the SSH connections earlier tests' playbooks left open (ControlPersist keeps a master for
    120 s after a run), wait until the droplet has none from the controller and sshd's journal has
    stopped growing: its `Received disconnect from <controller>` lines belong to those old
    connections, not to what is measured after this."""
    for socket_path in (EPHEMERAL / "cp").glob("*"):
        subprocess.run(["ssh", "-S", str(socket_path), "-O", "exit", "droplet"], capture_output=True, check=False)
    established = f"ss -Htn state established '( sport = :22 and dst {CONTROLLER} )'"
    for _ in range(30):
        if not host.check_output(established):
            break
        time.sleep(0.5)
    assert not host.check_output(established), host.check_output(established)
    cursor = sshd_cursor(host)
    for _ in range(20):
        time.sleep(1)
        cursor, last = sshd_cursor(host), cursor
        if cursor == last:
            return
    raise AssertionError("sshd's journal kept growing: " + sshd_log_since(host, cursor))


# The operator's typos: each bad value fails naming the variable before site.yml connects
# anywhere, so none of them costs a login attempt fail2ban could count.
TYPOS = [
    ({"users_ssh_user": "Deploy"}, "users_ssh_user"),
    ({"users_ssh_user": "deploy user"}, "users_ssh_user"),
    ({"users_ssh_port": 70000}, "users_ssh_port"),
    ({"users_ssh_authorized_key_files": ["~/.ssh/no-such-key.pub"]}, "users_ssh_authorized_key_files"),
    ({"hardening_ufw_fail2ban_ignore_ips": ["203.0.113.300"]}, "hardening_ufw_fail2ban_ignore_ips"),
]


def test_five_bad_runs_of_site_yml_make_no_ssh_connection_and_ban_nobody(ansible_playbook, host, tmp_path):
    """The issue's operator: five runs of the real site.yml in a row, each with a typo. Each fails
    naming the variable, sshd sees no connection at all, and the operator still logs in: nothing
    was banned. fail2ban ignores the controller in this scenario (group_vars/web.yml), so the test
    takes it off the ignore list first: five refused logins as a mistyped user would ban it."""
    before = watched(host)
    host.run_expect([0], f"fail2ban-client set sshd delignoreip {CONTROLLER}")
    try:
        close_earlier_connections(host)
        cursor = sshd_cursor(host)
        for extra_vars, variable in TYPOS:
            # A fresh control socket directory: no connection left open by an earlier run could
            # carry a command without sshd seeing a new connection.
            run = ansible_playbook("site.yml", extra_vars=extra_vars,
                                   env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")})
            assert_rejected_naming(run, variable)
            assert run.total("unreachable") == 0, run.describe()
        during = sshd_log_since(host, cursor)
        after_runs = sshd_cursor(host)
        login = ssh(ADDRESS, USER, "id -un", key=KEY)
        banned = host.check_output("fail2ban-client get sshd banip")
        for _ in range(10):  # the journal may lag the login by a moment
            operator = sshd_log_since(host, after_runs)
            if "Accepted publickey" in operator:
                break
            time.sleep(1)
    finally:
        host.run_expect([0], f"fail2ban-client set sshd addignoreip {CONTROLLER}")
    assert "Connection from" not in during and CONTROLLER not in during, during
    assert login.returncode == 0 and login.stdout.strip() == USER, login.stderr
    assert CONTROLLER not in banned.split(), banned
    # The same journal does show a connection when there is one: the check above can fail.
    assert f"Connection from {CONTROLLER}" in operator and f"Accepted publickey for {USER}" in operator, operator
    assert watched(host) == before


def test_a_key_removed_from_the_inventory_can_no_longer_log_in(ansible_playbook, tmp_path):
    second = tmp_path / "second_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "second", "-f", str(second)], check=True)
    both = [f"{KEY}.pub", f"{second}.pub"]
    # `users`: the deploy user's keys (and the checks); nothing of sshd or the firewall.
    run = ansible_playbook("converge.yml", tags="users", extra_vars={"users_ssh_authorized_key_files": both})
    assert run.rc == 0 and run.changed > 0, run.describe()
    added = ssh(ADDRESS, USER, "id -un", key=second)
    assert added.returncode == 0 and added.stdout.strip() == USER, added.stderr
    run = ansible_playbook("converge.yml", tags="users", extra_vars={"users_ssh_authorized_key_files": [f"{KEY}.pub"]})
    assert run.rc == 0 and run.changed > 0, run.describe()
    removed = ssh(ADDRESS, USER, "id -un", key=second)
    assert removed.returncode == 255 and "Permission denied (publickey)" in removed.stderr, removed.stderr
    kept = ssh(ADDRESS, USER, "id -un", key=KEY)
    assert kept.returncode == 0 and kept.stdout.strip() == USER, kept.stderr


def test_check_mode_on_converged_host_changes_nothing(ansible_playbook, tmp_path):
    """--check on the converged droplet, in one run with a fresh droplet that just joined the
    inventory: connect.yml logs in as the deploy user to one and as root to the other, in parallel;
    the converged droplet reports no change, and the fresh one is left exactly as it was."""
    hosts = {}
    for droplet in (DROPLET, FRESH):
        # Host variables: group variables inside an inventory file rank below group_vars/all.yml,
        # which playbooks/connect.yml reads through playbooks/group_vars.
        hosts[droplet["instance"]] = {
            "ansible_host": droplet["address"], "ansible_user": "root",
            "ansible_ssh_private_key_file": droplet["identity_file"],
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            "users_ssh_user": USER, "users_ssh_authorized_key_files": [droplet["identity_file"] + ".pub"],
            "hardening_ufw_fail2ban_ignore_ips": [CONTROLLER]}
    run = ansible_playbook("converge.yml", inventory=write_inventory(tmp_path / "inventory.json", hosts),
                           check=True, diff=True)
    assert run.rc == 0 and run.failed == 0, run.describe()
    converged_changes = [task for task in run.changed_tasks if task.startswith(DROPLET["instance"] + ":")]
    assert run.stats[DROPLET["instance"]]["changed"] == 0, converged_changes
    assert login_report(run) == {FRESH["instance"]: "root", DROPLET["instance"]: USER}, run.describe()
    assert run.stats[FRESH["instance"]]["changed"] > 0, run.describe()
    # --check left the fresh droplet as it was: root still gets in, there is no deploy user.
    still_root = ssh(FRESH["address"], "root", "id -un; id deploy || true", key=FRESH["identity_file"])
    assert still_root.returncode == 0 and still_root.stdout.splitlines()[0] == "root", still_root.stderr
    assert "no such user" in still_root.stdout + still_root.stderr


# Issue 14: moving sshd to another port. In this order (Testinfra runs the tests that take `host`
# first, in file order, then the others): the first leaves the droplet on NEW_PORT, the second
# starts from there and ends on port 22 again, where every other test expects sshd.
NEW_PORT = 2222
BLOCKED_PORT = 2022


def droplet_inventory(tmp_path, port):
    """The droplet alone, reached on `port`: the inventory an operator edits after a port change
    (ansible_port in the inventory, not -e, which would outrank the role's login on the new port)."""
    hosts = {DROPLET["instance"]: {
        "ansible_host": ADDRESS, "ansible_port": port, "ansible_user": "root",
        "ansible_ssh_private_key_file": KEY,
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
        "users_ssh_user": USER, "users_ssh_authorized_key_files": [f"{KEY}.pub"],
        "hardening_ufw_fail2ban_ignore_ips": [CONTROLLER]}}
    return write_inventory(tmp_path / f"inventory-{port}.json", hosts)


def sshd_ports(host):
    """The ports sshd takes connections on inside the droplet: those an sshd process holds (ss), and
    those of ssh.socket while it is active (24.04, where systemd holds them until ssh.service runs)."""
    socket_unit = host.run("systemctl is-active --quiet ssh.socket && "
                           "systemctl show ssh.socket --property=Listen").stdout
    sshd = host.check_output("ss -Hltnp")
    found = sorted({int(port) for port in re.findall(r":(\d+) \(Stream\)", socket_unit)}
                   | {int(port) for port in re.findall(r":(\d+)\s+\S+\s+users:\(\(\"sshd\"", sshd)})
    return found, socket_unit + sshd


def refused(address, port, timeout=5):
    """Whether the droplet answers a TCP connection to `port` with a reset (nothing listens)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def test_a_port_change_applies_over_ssh_and_closes_the_old_port(ansible_playbook, host, tmp_path):
    """The operator sets users_ssh_port and runs the playbook through the old port: on every release
    (24.04 through ssh.socket) sshd then takes the deploy user on the new port only, the firewall
    lets it through, and the next run, through the new port, changes nothing."""
    run = ansible_playbook("converge.yml", inventory=droplet_inventory(tmp_path, 22),
                           extra_vars={"users_ssh_port": NEW_PORT})
    assert run.rc == 0 and run.failed == 0, run.describe()
    moved = [name.rpartition(" : ")[2] for name, _, _ in run.results("changed")]
    assert "Close the old ports" in moved, run.describe()
    login = ssh(ADDRESS, USER, "id -un; sudo -n id -u", key=KEY, port=NEW_PORT)
    assert login.returncode == 0 and login.stdout.split() == [USER, "0"], login.stderr + journal(host, "ssh")
    ports, listeners = sshd_ports(host)
    assert ports == [NEW_PORT], listeners
    assert refused(ADDRESS, 22), listeners + host.check_output("ufw status")
    assert effective(host, USER)["port"] == [str(NEW_PORT)]
    assert "Port 22\n" not in host.file("/etc/ssh/sshd_config").content_string
    status = host.check_output("ufw status")
    assert re.search(rf"^{NEW_PORT}/tcp\s+LIMIT\s+Anywhere\s+# SSH$", status, re.M), status
    again = ansible_playbook("converge.yml", inventory=droplet_inventory(tmp_path, NEW_PORT),
                             extra_vars={"users_ssh_port": NEW_PORT})
    assert again.rc == 0 and again.failed == 0, again.describe()
    assert again.changed == 0, again.describe()
    assert login_report(again) == {DROPLET["instance"]: USER}, again.describe()


def test_a_new_port_the_deploy_user_cannot_reach_leaves_the_old_port_open(ansible_playbook, host, tmp_path):
    """The lock-out guard: a firewall outside the role's reach (the provider's, played by an iptables
    rule ahead of ufw's) drops the new port. The run stops naming it and sshd still takes the deploy
    user on the old port. The next run, with the drop lifted and port 22 set again, closes both
    other ports: a failed move leaves nothing behind."""
    block = f"INPUT -p tcp --dport {BLOCKED_PORT} -j DROP"
    host.run_expect([0], f"iptables -I {block}")
    try:
        run = ansible_playbook("converge.yml", inventory=droplet_inventory(tmp_path, NEW_PORT),
                               extra_vars={"users_ssh_port": BLOCKED_PORT})
        ports, listeners = sshd_ports(host)
        kept = ssh(ADDRESS, USER, "id -un", key=KEY, port=NEW_PORT)
    finally:
        host.run_expect([0], f"iptables -D {block}")
    assert run.rc != 0, run.describe()
    assert any(f"on the new port {BLOCKED_PORT}" in message for message in run.failure_messages), run.describe()
    assert kept.returncode == 0 and kept.stdout.strip() == USER, kept.stderr + journal(host, "ssh")
    assert ports == sorted([BLOCKED_PORT, NEW_PORT]), listeners
    back = ansible_playbook("converge.yml", inventory=droplet_inventory(tmp_path, NEW_PORT))
    assert back.rc == 0 and back.failed == 0, back.describe()
    login = ssh(ADDRESS, USER, "id -un", key=KEY)
    assert login.returncode == 0 and login.stdout.strip() == USER, login.stderr
    ports, listeners = sshd_ports(host)
    assert ports == [22] and refused(ADDRESS, NEW_PORT) and refused(ADDRESS, BLOCKED_PORT), listeners
