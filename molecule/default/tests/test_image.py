"""The test image is Ubuntu 20.04 with systemd as a running init, as every other scenario assumes."""


def test_image_is_ubuntu_20_04(host):
    os_release = host.file("/etc/os-release").content_string
    assert 'VERSION_ID="20.04"' in os_release, os_release


def test_systemd_is_running_with_no_failed_units(host):
    state = host.run("systemctl is-system-running --wait")
    failed = host.run("systemctl --failed --no-legend --plain")
    assert state.stdout.strip() == "running", f"{state.stdout}\nfailed units:\n{failed.stdout}"
    assert failed.stdout.strip() == ""


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_python3_is_present_for_ansible(host):
    python = host.run("python3 --version")
    assert python.rc == 0, python.stderr
    assert python.stdout.startswith("Python 3.8"), python.stdout
