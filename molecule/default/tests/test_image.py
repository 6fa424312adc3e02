"""The test image is the Ubuntu release the run asked for (MOLECULE_DISTRO), with systemd as a
running init and the release's own python3, as every other scenario assumes."""
import os

# What each supported release is: VERSION_ID and the python3 it ships (the interpreter Ansible uses).
RELEASES = {
    "ubuntu2004": ("20.04", "focal", "Python 3.8."),
    "ubuntu2204": ("22.04", "jammy", "Python 3.10."),
    "ubuntu2404": ("24.04", "noble", "Python 3.12."),
}
VERSION_ID, CODENAME, PYTHON = RELEASES[os.environ.get("MOLECULE_DISTRO", "ubuntu2004")]


def test_image_is_the_release_asked_for(host):
    os_release = host.file("/etc/os-release").content_string
    assert f'VERSION_ID="{VERSION_ID}"' in os_release and f"VERSION_CODENAME={CODENAME}" in os_release, os_release


def test_apt_sources_are_the_release_its_updates_and_security_with_universe(host):
    sources = host.run("cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null").stdout
    for pocket in (CODENAME, f"{CODENAME}-updates", f"{CODENAME}-security"):
        assert pocket in sources, sources
    assert "universe" in sources, sources


def test_systemd_is_running_with_no_failed_units(host):
    state = host.run("systemctl is-system-running --wait")
    failed = host.run("systemctl --failed --no-legend --plain")
    assert state.stdout.strip() == "running", f"{state.stdout}\nfailed units:\n{failed.stdout}"
    assert failed.stdout.strip() == ""


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_python3_is_the_releases_own_for_ansible(host):
    python = host.run("python3 --version")
    assert python.rc == 0, python.stderr
    assert python.stdout.startswith(PYTHON), python.stdout
