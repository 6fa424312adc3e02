"""The venv install method, reached by switching a converged host: one certbot, one timer, the same
certificate, a dry run of the virtualenv's certbot against Pebble, and a second run that changes
nothing. Before that, what the role must not touch: a directory at certbot_venv_path it did not
make. (test_5 switches back to the package.)"""
import pytest

from certbot_helpers import DIRECTORY, EXTRA, NAMES, certbot, certbot_log, certbot_state, file_serial, served
from certbot_helpers import pebble, pebble_root, target_ip  # noqa: F401  (fixtures)
from conftest import assert_no_changes, assert_rejected_naming, journal

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


FOREIGN = "/opt/not-ours"


@pytest.fixture
def foreign_directory(host):
    """A directory at the venv path that the role did not make: the operator's files, or a virtualenv
    made by hand the way certbot's own pip instructions do (pyvenv.cfg, bin/certbot, no requirements.txt),
    with /usr/local/bin/certbot linked into it."""
    def make(virtualenv):
        host.run_expect([0], f"rm -rf {FOREIGN} && mkdir -p {FOREIGN}/bin && echo keep > {FOREIGN}/keep.txt")
        if virtualenv:
            host.run_expect([0], f"echo 'home = /usr/bin' > {FOREIGN}/pyvenv.cfg && printf '#!/bin/sh\\n' > "
                                 f"{FOREIGN}/bin/certbot && chmod 755 {FOREIGN}/bin/certbot "
                                 f"&& ln -sfn {FOREIGN}/bin/certbot /usr/local/bin/certbot")
        return host.check_output(f"find {FOREIGN} /usr/local/bin -printf '%p %l %s %T@\\n' | sort")
    yield make
    host.run(f"rm -rf {FOREIGN}; [ \"$(readlink /usr/local/bin/certbot)\" = {FOREIGN}/bin/certbot ] "
             "&& rm -f /usr/local/bin/certbot")


@pytest.mark.parametrize("virtualenv", [False, True], ids=["plain-directory", "hand-made-virtualenv"])
def test_the_package_method_leaves_a_directory_it_did_not_make_alone(host, ansible_playbook, foreign_directory,
                                                                      virtualenv):
    before = foreign_directory(virtualenv)
    run = ansible_playbook("converge.yml", extra_vars={**EXPANDED, "certbot_venv_path": FOREIGN}, tags=["certbot"])
    assert_no_changes(run)
    assert f"certbot_venv_path {FOREIGN} is left alone" in run.output, run.describe()
    after = host.check_output(f"find {FOREIGN} /usr/local/bin -printf '%p %l %s %T@\\n' | sort")
    assert after == before


def test_the_venv_method_refuses_a_directory_that_is_not_a_virtualenv(host, ansible_playbook, foreign_directory):
    foreign_directory(False)
    before = certbot_state(host)
    run = ansible_playbook("converge.yml", extra_vars={**EXPANDED, "certbot_install_method": "venv",
                                                       "certbot_venv_path": FOREIGN}, tags=["certbot"])
    assert_rejected_naming(run, "certbot_venv_path")
    assert certbot_state(host) == before
    assert host.package("certbot").is_installed


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

