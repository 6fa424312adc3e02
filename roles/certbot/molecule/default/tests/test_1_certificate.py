"""certbot against a real ACME server (Pebble, in its own container on the scenario's network):
the certificate nginx serves, the handover, check mode, skipping, bad input and the renewal timer.

Certificates are checked from outside the target: the controller opens TLS connections to the
target's address with `openssl s_client` and verifies the chain against this Pebble run's root.
The modules run in name order; the ones that renew (2) or expand (3) the certificate come last.

Re-running the whole site keeps the real certificate: Molecule's idempotence step re-runs
converge.yml (tls_selfsigned, nginx_site, certbot) on the converged host and fails on any change,
so nginx_site's own run must already render the Let's Encrypt paths (certbot's handover would
otherwise switch them back, a change too), and the tests below then find Pebble's certificate served.
"""
import re
import subprocess

import pytest

from certbot_helpers import DIRECTORY, NAMES, RENEWAL_CONF, certbot_state, file_serial, served
from certbot_helpers import pebble, pebble_root, target_ip  # noqa: F401  (fixtures)
from conftest import assert_no_changes, assert_rejected_naming, journal
from tests.lib.hostile import PATTERNS, hostile_vars, unnamed

testinfra_hosts = ["web"]


# ---------------------------------------------------------------------------------------------
# the certificate and the handover


@pytest.mark.parametrize("name", NAMES)
def test_nginx_serves_a_pebble_certificate_for_both_names(host, target_ip, pebble_root, name):
    tls = served(target_ip, name, pebble_root)
    # Verified against this Pebble run's root, through the intermediate nginx sends, for this name.
    assert tls.verify == (0, "ok"), tls.output[-2000:]
    assert tls.names == sorted(NAMES), tls.names
    assert "Pebble Intermediate CA" in tls.leaf.issuer.rfc4514_string()
    assert len(tls.chain) >= 2, "nginx must send the intermediate (fullchain.pem)"
    assert tls.serial == file_serial(host), "nginx serves something else than the live certificate"


def test_hsts_is_on_once_the_real_certificate_is_served(target_ip, pebble_root):
    proc = subprocess.run(
        ["curl", "-sS", "--cacert", pebble_root, "-o", "/dev/null", "-D", "-",
         "--resolve", f"{NAMES[0]}:443:{target_ip}", f"https://{NAMES[0]}/"],
        capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"(?im)^strict-transport-security: max-age=\d+", proc.stdout), proc.stdout


def test_check_mode_on_converged_host_changes_nothing(ansible_playbook):
    run = ansible_playbook("converge.yml", check=True, diff=True)
    assert_no_changes(run)


# ---------------------------------------------------------------------------------------------
# skipping and bad input


@pytest.mark.parametrize("extra_vars", [{"certbot_email": ""}, {"certbot_domains": []}],
                         ids=["no-email", "no-names"])
def test_role_is_skipped_with_a_message_without_email_or_names(ansible_playbook, extra_vars):
    run = ansible_playbook("converge.yml", extra_vars=extra_vars, tags=["certbot"])
    assert_no_changes(run)
    assert "certbot skipped: set certbot_domains" in run.output, run.describe()
    # Only the input checks and the message ran: nothing was installed, started or handed over.
    ran = {(task["task"]["name"], result.get("action")) for task in run.tasks
           for result in task["hosts"].values() if not result.get("skipped")}
    read_only = {"ansible.builtin.validate_argument_spec", "ansible.builtin.assert", "ansible.builtin.debug"}
    assert ran and {action for _, action in ran} <= read_only, ran
    assert any(name.endswith("Say why certbot does nothing") for name, _ in ran), ran


@pytest.mark.parametrize("extra_vars, variable", [
    ({"certbot_email": "not-an-address"}, "certbot_email"),
    ({"certbot_domains": ["gigaflask.test", "bad name.test"]}, "certbot_domains"),
    ({"certbot_domains": ["*.gigaflask.test"]}, "certbot_domains"),
    ({"certbot_install_method": "snap"}, "certbot_install_method"),
    ({"certbot_acme_directory": "http://insecure.test/dir"}, "certbot_acme_directory"),
    ({"certbot_acme_ca_bundle": "/nonexistent/ca.pem"}, "certbot_acme_ca_bundle"),
], ids=["email", "domain", "wildcard", "install-method", "directory", "ca-bundle"])
def test_bad_input_fails_before_any_change_naming_the_variable(host, ansible_playbook, extra_vars, variable):
    conf_before = host.file(RENEWAL_CONF).sha256sum
    serial_before = file_serial(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars, tags=["certbot"])
    assert_rejected_naming(run, variable)
    assert host.file(RENEWAL_CONF).sha256sum == conf_before
    assert file_serial(host) == serial_before
    assert sorted(host.check_output("ls /etc/letsencrypt/live").split()) == ["README", "gigaflask.test"]


# Every free-text variable of the role, with a good value; tests.lib.hostile spoils them.
GOOD = {
    "certbot_domains": NAMES,
    "certbot_email": "admin@gigaflask.test",
    "certbot_venv_version": "3.0.1",
    "certbot_venv_path": "/opt/certbot",
    "certbot_cert_name": NAMES[0],
    "certbot_acme_directory": DIRECTORY,
    "certbot_acme_ca_bundle": "/etc/gigaflask-test/acme-ca.pem",
    "certbot_webroot": "/var/www/acme",
    "certbot_packages": ["certbot"],
    "certbot_venv_packages": ["python3-venv"],
}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_hostile_values_are_refused_naming_each_variable_and_change_nothing(host, ansible_playbook, pattern):
    before = certbot_state(host)
    run = ansible_playbook("converge.yml", extra_vars=hostile_vars(GOOD, pattern), tags=["certbot"])
    assert run.rc != 0 and run.changed == 0, run.describe()
    assert not unnamed(run, GOOD), (unnamed(run, GOOD), run.describe())
    assert certbot_state(host) == before


def test_a_name_nginx_does_not_serve_fails_before_any_order(host, ansible_playbook):
    # nginx_site does not answer for this name (its catch-all closes the connection), so the ACME
    # server could not validate it: the role must stop before certbot sends an order.
    log_before = host.file("/var/log/letsencrypt/letsencrypt.log").mtime
    serial_before = file_serial(host)
    run = ansible_playbook("converge.yml", extra_vars={"certbot_domains": NAMES + ["elsewhere.gigaflask.test"]},
                           tags=["certbot"])
    assert run.rc != 0, run.describe()
    assert any("does not serve" in m and "elsewhere.gigaflask.test" in m for m in run.failure_messages), \
        run.describe()
    assert not any("Order the certificate with certbot" in t["task"]["name"] for t in run.tasks), run.describe()
    assert host.file("/var/log/letsencrypt/letsencrypt.log").mtime == log_before, "certbot ran"
    assert file_serial(host) == serial_before
    assert not host.file("/var/www/acme/.well-known/acme-challenge/gigaflask-probe").exists


# ---------------------------------------------------------------------------------------------
# renewal


def test_certbot_timer_is_the_only_renewal_mechanism(host):
    timer = host.service("certbot.timer")
    assert timer.is_enabled and timer.is_running, journal(host, "certbot.timer")
    timers = host.check_output("systemctl list-timers --all --no-legend --plain")
    certbot_timers = [line.split()[-2:] for line in timers.splitlines() if "certbot" in line]
    assert certbot_timers == [["certbot.timer", "certbot.service"]], timers
    # Nothing cron reads mentions certbot (the package ships /etc/cron.d/certbot; the role removes it).
    cron = host.run("grep -rls certbot /etc/crontab /etc/cron.d /etc/cron.daily /etc/cron.hourly "
                    "/etc/cron.weekly /etc/cron.monthly /var/spool/cron")
    assert cron.stdout.strip() == "", cron.stdout


def test_renewal_service_runs_cleanly(host):
    start = host.run("systemctl start certbot.service")
    result = host.check_output("systemctl show -p Result --value certbot.service")
    assert start.rc == 0 and result == "success", journal(host, "certbot.service")
