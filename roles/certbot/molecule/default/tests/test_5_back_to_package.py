"""Back from the venv method (test_4) to the package: the virtualenv the role made is deleted (it is
the role's: pyvenv.cfg and the role's requirements.txt), with its link and units; one certbot, one
timer, the same certificate, and a second run that changes nothing."""
from certbot_helpers import EXTRA, NAMES, file_serial, served
from certbot_helpers import pebble, pebble_root, target_ip  # noqa: F401  (fixtures)
from conftest import assert_no_changes

testinfra_hosts = ["web"]

EXPANDED = {"certbot_domains": NAMES + [EXTRA], "nginx_site_extra_names": [EXTRA]}
VENV = "/opt/certbot"


def test_switching_back_to_the_package_deletes_the_virtualenv_the_role_made(host, ansible_playbook, target_ip,
                                                                            pebble_root):
    # What test_4 left: the role's virtualenv, linked into the PATH.
    assert host.file(f"{VENV}/pyvenv.cfg").exists and host.file(f"{VENV}/requirements.txt").exists
    assert host.file("/usr/local/bin/certbot").linked_to == f"{VENV}/bin/certbot"
    serial = file_serial(host)
    run = ansible_playbook("converge.yml", extra_vars=EXPANDED, tags=["certbot"])
    assert run.rc == 0 and run.failed == 0, run.describe()
    assert any("Remove the venv method's virtualenv" in task for task in run.changed_tasks), run.describe()
    assert not host.file(VENV).exists
    assert not host.file("/usr/local/bin/certbot").exists
    assert host.package("certbot").is_installed
    assert host.check_output("command -v certbot") == "/usr/bin/certbot"
    # The timer systemd runs is the one the package ships (under /lib on 20.04 and 22.04, /usr/lib on
    # 24.04), not a unit of the venv method left in /etc.
    timer = host.check_output("systemctl show -p FragmentPath --value certbot.timer")
    assert timer.endswith("/systemd/system/certbot.timer") and not timer.startswith("/etc/"), timer
    assert timer in host.check_output("dpkg -L certbot").splitlines(), timer
    assert host.service("certbot.timer").is_running
    assert file_serial(host) == serial
    assert served(target_ip, NAMES[0], pebble_root).serial == serial
    assert_no_changes(ansible_playbook("converge.yml", extra_vars=EXPANDED, tags=["certbot"]))
