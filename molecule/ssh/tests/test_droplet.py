"""users_ssh + hardening_ufw on a droplet reached over real SSH, through playbooks/connect.yml.

Clients (ssh, sshpass, sockets) connect from the host to the droplet's address, as from the
internet. Testinfra itself inspects the droplet with `docker exec`: root is refused over SSH now.
"""
import re
import subprocess
from pathlib import Path

import pytest

from conftest import assert_rejected_naming, journal
from tests.lib.droplets import docker_hosts, instances, write_inventory
from tests.lib.listeners import connects, listening
from tests.lib.ssh import assert_password_login_is_refused, container_pid, ssh, ssh_audit

testinfra_hosts = docker_hosts("web")

POLICY = "Hardened Ubuntu Server 20.04 LTS (version 5)"
USER = "deploy"  # users_ssh_user in molecule.yml
DROPLET = (instances("web") or [{}])[0]
FRESH = (instances("fresh") or [{}])[0]
KEY = DROPLET.get("identity_file")
ADDRESS = DROPLET.get("address")


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


def test_ssh_audit_hardened_ubuntu_20_04_policy_passes(host):
    # From inside the droplet's network namespace, to its own address: ssh-audit opens ~16
    # connections at once, which ufw's `limit` on port 22 rightly refuses from outside.
    audit = ssh_audit(ADDRESS, POLICY, netns_pid=container_pid(DROPLET["instance"]))
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


def test_fail2ban_bans_an_address_that_keeps_failing(host):
    # Another container plays the attacker: five failed logins within ufw's limit (5 per 30 s).
    attacker = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/bin/bash", "gigaflask/ubuntu2004:sshd", "-c",
         f"hostname -I; for i in 1 2 3 4 5; do ssh -o BatchMode=yes -o StrictHostKeyChecking=no "
         f"-o ConnectTimeout=5 intruder$i@{ADDRESS} true 2>/dev/null; sleep 1; done; true"],
        capture_output=True, text=True, timeout=120, check=False)
    attacker_ip = attacker.stdout.split()[0]
    banned = ""
    for _ in range(30):
        banned = host.check_output("fail2ban-client get sshd banip")
        if attacker_ip in banned.split():
            break
        subprocess.run(["sleep", "1"], check=False)
    assert attacker_ip in banned.split(), host.check_output("fail2ban-client status sshd") + journal(host, "fail2ban")
    assert attacker_ip in host.check_output("iptables -S f2b-sshd")
    host.run_expect([0], f"fail2ban-client set sshd unbanip {attacker_ip}")


# The lockout guard over real SSH; the role scenarios cover every other bad input. The deploy
# user stays `deploy`: it is the account these runs log in with.
@pytest.mark.parametrize("extra_vars, variable", [
    ({"users_ssh_authorized_key_files": [], "users_ssh_authorized_keys_exclusive": True},
     "users_ssh_authorized_keys"),
], ids=["password-off-and-no-keys"])
def test_bad_input_fails_before_any_change(ansible_playbook, host, extra_vars, variable):
    watched = f"/etc/ssh/sshd_config /etc/ufw/user.rules /etc/sudoers.d/90-{USER} /home/{USER}/.ssh/authorized_keys"
    before = host.check_output(f"sha256sum {watched}")
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert_rejected_naming(run, variable)
    assert host.check_output(f"sha256sum {watched}") == before


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
            "hardening_ufw_fail2ban_ignore_ips": ["{{ ansible_default_ipv4.gateway }}"]}
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
