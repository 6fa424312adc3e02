"""The venv install method, reached by switching a converged host: one certbot, one timer, the same
certificate, a dry run of the virtualenv's certbot against Pebble, and a second run that changes
nothing. (Switching back to the package is the same clean-up in reverse; it is not run here to keep
the scenario's time down.)"""
from certbot_helpers import DIRECTORY, EXTRA, NAMES, certbot, certbot_log, file_serial, served
from certbot_helpers import pebble, pebble_root, target_ip  # noqa: F401  (fixtures)
from conftest import assert_no_changes, journal

testinfra_hosts = ["web"]

# test_3 left the certificate with three names; keep them so that only the method changes.
EXPANDED = {"certbot_domains": NAMES + [EXTRA], "nginx_site_extra_names": [EXTRA]}


def only_certbot_timer(host):
    timers = host.check_output("systemctl list-timers --all --no-legend --plain")
    certbot_timers = [line.split()[-2:] for line in timers.splitlines() if "certbot" in line]
    assert certbot_timers == [["certbot.timer", "certbot.service"]], timers
    cron = host.run("grep -rls certbot /etc/crontab /etc/cron.d /var/spool/cron")
    assert cron.stdout.strip() == "", cron.stdout
    return host.check_output("systemctl show -p FragmentPath --value certbot.timer")


def test_switching_to_venv_keeps_the_certificate_and_one_timer(host, ansible_playbook, target_ip, pebble_root):
    serial = file_serial(host)
    run = ansible_playbook("converge.yml", extra_vars={**EXPANDED, "certbot_install_method": "venv"}, tags=["certbot"])
    assert run.rc == 0 and run.failed == 0, run.describe()
    assert not any("Order the certificate" in task for task in run.changed_tasks), run.describe()
    assert file_serial(host) == serial
    assert served(target_ip, NAMES[0], pebble_root).serial == serial

    assert host.check_output("certbot --version 2>&1") == "certbot 3.0.1"
    assert not host.package("certbot").is_installed
    assert only_certbot_timer(host) == "/etc/systemd/system/certbot.timer"
    assert host.service("certbot.timer").is_running
    start = host.run("systemctl start certbot.service")
    assert start.rc == 0, journal(host, "certbot.service")

    # The virtualenv's certbot renews the lineage certbot 0.40 made, through the drop-in's CA bundle.
    result = certbot(host, f"renew --dry-run --server {DIRECTORY}")
    assert result.rc == 0, result.stdout + result.stderr + certbot_log(host)
    assert file_serial(host) == serial

    assert_no_changes(ansible_playbook("converge.yml", extra_vars={**EXPANDED, "certbot_install_method": "venv"},
                                      tags=["certbot"]))

