"""hardening_ufw on a bare container: the firewall as a client outside sees it (connections from the
host), ufw's own view of its rules, fail2ban's jail and apt's effective configuration."""
import re
import time

import pytest

from conftest import assert_no_changes, assert_rejected_naming, journal
from tests.lib.hostile import PATTERNS, named, spoil
from tests.lib.listeners import connects, listening
from tests.lib.ssh import container_address

LISTEN_PORTS = [22, 80, 443, 5432, 8000]


@pytest.fixture(scope="module")
def address(host):
    return container_address(host.backend.get_hostname())


@pytest.fixture(scope="module")
def listeners(host):
    """Throwaway TCP listeners on 0.0.0.0 inside the target (no sshd or nginx in this image)."""
    with listening(host, LISTEN_PORTS) as ports:
        yield ports


def user_input_packets(host, port):
    """Packets that hit ufw's user rule for a TCP port (the counters restart whenever ufw reloads)."""
    out = host.check_output("iptables -L ufw-user-input -n -v -x")
    counts = [int(line.split()[0]) for line in out.splitlines() if re.search(rf"\btcp dpt:{port}\b", line)]
    assert counts, out
    return sum(counts)


def ufw_state(host):
    return host.check_output("ufw status verbose") + host.check_output("sha256sum /etc/ufw/user.rules /etc/ufw/user6.rules")


# Every file the role writes, and what ufw and fail2ban have loaded.
WRITTEN = ["/etc/ufw/user.rules", "/etc/ufw/user6.rules", "/etc/default/ufw", "/etc/ufw/ufw.conf",
           "/etc/fail2ban/jail.d/hardening-ufw-sshd.local", "/etc/apt/apt.conf.d/20auto-upgrades",
           "/etc/apt/apt.conf.d/52hardening-ufw-unattended-upgrades"]


def written(host):
    return (ufw_state(host) + host.check_output("sha256sum " + " ".join(WRITTEN))
            + host.check_output("fail2ban-client get sshd ignoreip; fail2ban-client get sshd bantime"))


def test_ufw_is_active_with_exactly_the_expected_policies_and_rules(host):
    status = host.check_output("ufw status verbose")
    head, _, table = status.partition("--")
    assert "Status: active" in head
    assert "Logging: on (medium)" in head
    assert "Default: deny (incoming), allow (outgoing), deny (routed)" in head
    rules = sorted(" ".join(line.split()) for line in table.splitlines()[1:] if line.strip())
    assert rules == sorted([
        "22/tcp LIMIT IN Anywhere # SSH",
        "80/tcp ALLOW IN Anywhere # web",
        "443/tcp ALLOW IN Anywhere # web",
        "5432/tcp ALLOW IN 10.11.0.0/16 # PostgreSQL from the private network",
        "60000:61000/udp ALLOW IN Anywhere # mosh",
        "22/tcp (v6) LIMIT IN Anywhere (v6) # SSH",
        "80/tcp (v6) ALLOW IN Anywhere (v6) # web",
        "443/tcp (v6) ALLOW IN Anywhere (v6) # web",
        "60000:61000/udp (v6) ALLOW IN Anywhere (v6) # mosh",
    ]), status
    assert host.service("ufw").is_enabled


def test_ssh_http_and_https_are_reachable_from_outside(address, listeners):
    assert {port: connects(address, port) for port in (22, 80, 443)} == {22: True, 80: True, 443: True}


@pytest.mark.parametrize("port", [8000, 5432])
def test_other_listener_is_reachable_inside_but_not_from_outside(host, address, listeners, port):
    inside = host.run(f"python3 -c \"import socket; socket.create_connection(('{address}', {port}), 3)\"")
    assert inside.rc == 0, inside.stderr
    assert not connects(address, port), f"port {port} is reachable from the host"


def test_policies_are_not_reapplied_on_a_second_run(ansible_playbook, host, address, listeners):
    for _ in range(3):
        assert connects(address, 80)
    before = user_input_packets(host, 80)
    assert before >= 3
    run = ansible_playbook("converge.yml", tags="firewall")
    assert_no_changes(run)
    assert user_input_packets(host, 80) >= before, "ufw reloaded its rules on a run with nothing to change"


def test_fail2ban_sshd_jail_is_running_with_the_configured_limits(host):
    status = host.run("fail2ban-client status sshd")
    assert status.rc == 0, status.stdout + status.stderr + journal(host, "fail2ban")
    assert host.check_output("fail2ban-client get sshd maxretry") == "5"
    assert host.check_output("fail2ban-client get sshd findtime") == "600"
    assert host.check_output("fail2ban-client get sshd bantime") == "3600"
    ignored = host.check_output("fail2ban-client get sshd ignoreip")
    assert "192.0.2.0/24" in ignored and "127.0.0.0/8" in ignored, ignored
    assert host.service("fail2ban").is_enabled


def test_unattended_security_upgrades_run_daily(host):
    config = host.check_output("apt-config dump")
    for line in ['APT::Periodic::Update-Package-Lists "1";', 'APT::Periodic::Unattended-Upgrade "1";',
                 'Unattended-Upgrade::Automatic-Reboot "false";',
                 'Unattended-Upgrade::Allowed-Origins:: "${distro_id}:${distro_codename}-security";']:
        assert line in config.splitlines(), line
    timer = host.service("apt-daily-upgrade.timer")
    assert timer.is_enabled and timer.is_running


def test_check_mode_on_converged_host_changes_nothing(ansible_playbook):
    run = ansible_playbook("converge.yml", check=True, diff=True)
    assert_no_changes(run)


def test_ssh_rule_follows_users_ssh_port(ansible_playbook, host):
    before = ufw_state(host)
    run = ansible_playbook("converge.yml", check=True, tags="firewall", extra_vars={"users_ssh_port": 2222})
    assert run.rc == 0, run.describe()
    ssh_rule = [result for name, _, result in run.results("changed") if "Allow SSH first" in name]
    assert ssh_rule and any("2222" in command for command in ssh_rule[0]["commands"]), run.describe()
    assert ufw_state(host) == before


@pytest.mark.parametrize("extra_vars, variable", [
    ({"hardening_ufw_ssh_port": "ssh"}, "hardening_ufw_ssh_port"),
    ({"hardening_ufw_rules": [{"port": "http"}]}, "hardening_ufw_rules"),
    ({"hardening_ufw_logging": "loud"}, "hardening_ufw_logging"),
    ({"hardening_ufw_rules": [{"port": "60000:61000", "proto": "any"}]}, "hardening_ufw_rules"),
    ({"hardening_ufw_rules": [{"port": 5432, "source": "10.0.0.0/8"}]}, "hardening_ufw_rules"),
    ({"hardening_ufw_web_ports": [80, 70000]}, "hardening_ufw_web_ports"),
], ids=["non-numeric-port", "rule-without-port-number", "unknown-log-level", "range-with-proto-any",
        "rule-with-unknown-field", "web-port-out-of-range"])
def test_bad_input_fails_before_any_change(ansible_playbook, host, extra_vars, variable):
    before = written(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert_rejected_naming(run, variable)
    assert written(host) == before


# Each free-text value the role passes to ufw (one command line the module joins), fail2ban's jail
# and apt's configuration, spoiled one hostile class at a time. Exceptions, each harmless where the
# value goes: a rule's comment may hold spaces (ufw gets it quoted; the test checks it is
# accepted), and a fail2ban time may start with '-' (bantime -1 is "for ever").
GOOD = {
    "hardening_ufw_fail2ban_findtime": "10m", "hardening_ufw_fail2ban_bantime": "1h",
    "hardening_ufw_fail2ban_ignore_ips": ["192.0.2.0/24"], "hardening_ufw_unattended_upgrades_reboot_time": "04:00",
    "hardening_ufw_packages": ["ufw"],
}
GOOD_RULE = {"port": "5432", "from": "10.11.0.0/16", "comment": "PostgreSQL"}
HARMLESS = {("comment", "space"), ("hardening_ufw_fail2ban_findtime", "leading-dash"),
            ("hardening_ufw_fail2ban_bantime", "leading-dash")}


@pytest.mark.parametrize("cls", PATTERNS)
def test_hostile_values_fail_naming_each_variable_before_any_change(ansible_playbook, host, cls):
    extra_vars = {name: [spoil(v, cls) for v in good] if isinstance(good, list) else spoil(good, cls)
                  for name, good in GOOD.items() if (name, cls) not in HARMLESS}
    rule = {field: spoil(good, cls) if (field, cls) not in HARMLESS else good for field, good in GOOD_RULE.items()}
    extra_vars["hardening_ufw_rules"] = [rule]
    before = written(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert run.rc != 0 and run.changed == 0, run.describe()
    labels = [name for name in extra_vars if name != "hardening_ufw_rules"]
    labels += [f"hardening_ufw_rules[0].{field}" for field in GOOD_RULE if (field, cls) not in HARMLESS]
    assert [label for label in labels if not named(run, label)] == [], run.describe()
    if cls == "space":
        assert not named(run, "hardening_ufw_rules[0].comment"), run.describe()
    assert written(host) == before


# Last of the host tests: the 6th connection within 30 s blocks the host's address for a while.
def test_new_ssh_connections_are_rate_limited(host, address, listeners):
    # Forget earlier tests' connections to port 22: ufw's `limit` rules count in the kernel's
    # `recent` list DEFAULT, and "/" empties it.
    host.run_expect([0], "echo / > /proc/net/xt_recent/DEFAULT")
    results = []
    for _ in range(7):
        results.append(connects(address, 22))
        time.sleep(0.2)
    assert results[:5] == [True] * 5 and results[5:] == [False, False], results
