"""Password sudo mode. In its own module, which pytest runs after test_users_ssh.py: it leaves the
host in password mode, and the other tests expect the passwordless converge."""
import os
from pathlib import Path

import pytest

from tests.lib.ssh import container_address, ssh

USER = "gigaflask"
KEY_FROM_FILE = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ".")) / "key_from_file"
# openssl passwd -6 -salt gigaflasksalt Sudo-pass-42
PASSWORD_HASH = ("$6$gigaflasksalt$Y7pY1LmhPHkAq/aQm4BL3UnImooqSd5vDkYuUhuk39HbhF4nQ4zfRqM15Fz0i9JUj0ddpH"
                 "F9Gqu8rkYMa3g2F0")


@pytest.fixture(scope="module")
def address(host):
    return container_address(host.backend.get_hostname())


def test_password_sudo_mode_asks_the_deploy_user_for_its_password(ansible_playbook, address, host):
    # `users`: the sudo policy lives with the user tasks.
    run = ansible_playbook("converge.yml", tags="users", extra_vars={
        "users_ssh_sudo_mode": "password", "users_ssh_password_hash": PASSWORD_HASH})
    assert run.rc == 0 and run.failed == 0, run.describe()
    assert not host.file(f"/etc/sudoers.d/90-{USER}").exists
    without = ssh(address, USER, "sudo -n true", key=KEY_FROM_FILE)
    assert without.returncode == 1 and "password is required" in without.stderr, without.stderr
    with_password = ssh(address, USER, "echo Sudo-pass-42 | sudo -S -k id -u", key=KEY_FROM_FILE)
    assert with_password.returncode == 0 and with_password.stdout.strip() == "0", with_password.stderr
