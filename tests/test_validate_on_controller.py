"""A role's `validate` entry point runs on the controller alone.

playbooks/validate.yml imports every role's `validate` entry point before connect.yml logs in, so
that bad input fails naming the variable with no SSH connection made (no failed login for fail2ban
to count). Here the host is an address where nothing listens: any task that needed the host would
come back "unreachable". Roles listed in CONTROLLER_ONLY are held to it (the others join as they
are converted).
"""
import json

import pytest

from conftest import run_playbook

# tls_selfsigned and nginx_site take their names from group_vars/all.yml's wiring; their controller-only
# runs are tests/test_certificate_wiring.py's.
CONTROLLER_ONLY = ["users_ssh", "hardening_ufw", "postgresql", "python_app", "gunicorn_supervisor", "certbot"]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBGyZ2Hm1y7tAQhz5SxRYwfMBHqFpnvJGC4e5QlK2f5P you@laptop"
# Enough for every role above to pass with its defaults (exclusive keys need a key).
GOOD = {"users_ssh_authorized_keys": [KEY]}


def validate(tmp_path, role, extra_vars):
    playbook = tmp_path / "validate.yml"
    playbook.write_text(json.dumps([{
        "name": "Validate on the controller", "hosts": "web", "gather_facts": False,
        "tasks": [{"name": f"Check the input of {role}",
                   "ansible.builtin.import_role": {"name": f"gigaflask.stack.{role}", "tasks_from": "validate"}}],
    }]))
    inventory = tmp_path / "inventory.json"
    # Port 9 on loopback: the connection is refused at once, so a task that needs the host fails
    # "unreachable" quickly instead of waiting for a timeout.
    inventory.write_text(json.dumps({"web": {"hosts": {"nowhere": {
        "ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_user": "nobody",
        "ansible_connection": "ssh", "ansible_ssh_common_args": "-o ControlMaster=no -o ConnectTimeout=3"}}}}))
    return run_playbook(playbook, inventory=inventory, extra_vars={**GOOD, **extra_vars})


@pytest.mark.parametrize("role", CONTROLLER_ONLY)
def test_validate_passes_good_input_without_reaching_the_host(tmp_path, role):
    run = validate(tmp_path, role, {})
    assert run.rc == 0 and run.failed == 0 and run.total("unreachable") == 0, run.describe()
    assert run.total("ok") > 0, run.describe()


@pytest.mark.parametrize("role, extra_vars, variable", [
    ("users_ssh", {"users_ssh_user": "Deploy; rm"}, "users_ssh_user"),
    ("users_ssh", {"users_ssh_authorized_keys": [], "users_ssh_authorized_key_files": []},
     "users_ssh_authorized_key_files"),
    ("users_ssh", {"users_ssh_port": 70000}, "users_ssh_port"),
    ("hardening_ufw", {"hardening_ufw_rules": [{"port": "22 from 1.2.3.4"}]}, "hardening_ufw_rules[0].port"),
    ("hardening_ufw", {"hardening_ufw_fail2ban_bantime": "1h\nenabled = false"}, "hardening_ufw_fail2ban_bantime"),
    ("python_app", {"python_app_env": {"SECRET_KEY": "x\nexport EVIL=1"}}, "python_app_env['SECRET_KEY']"),
    ("python_app", {"python_app_requirements_file": "../../etc/passwd"}, "python_app_requirements_file"),
    ("python_app", {"python_app_database_url": "postgresql://app:pw@db/app\nEVIL=1"}, "python_app_database_url"),
    # argv, never a shell: spaces, quotes and ';' are an argument's own; control characters and an
    # option in the program's place are not.
    ("python_app", {"python_app_release_command": ["flask", "db", "upgrade\nEVIL=1"]},
     "python_app_release_command"),
    ("python_app", {"python_app_release_command": ["--help"]}, "python_app_release_command"),
    ("postgresql", {"postgresql_database": "app; DROP"}, "postgresql_database"),
    ("postgresql", {"postgresql_hba_clients": [{"address": "all"}]}, "postgresql_hba_clients"),
    ("postgresql", {"postgresql_password": "pw\nlocal all all trust"}, "postgresql_password"),
    ("postgresql", {"postgresql_backup_on_calendar": "daily\nExecStart=/bin/sh"}, "postgresql_backup_on_calendar"),
    ("postgresql", {"postgresql_backup_keep": 0}, "postgresql_backup_keep"),
    ("python_app", {"python_app_repo": "https://ci:glpat-s3cret@git.example.com/app.git"}, "python_app_repo"),
    ("python_app", {"python_app_user": "deploy", "users_ssh_user": "deploy"}, "python_app_user"),
    ("python_app", {"python_app_build_user": "gigaflask-app"}, "python_app_build_user"),
    ("python_app", {"python_app_pip_index_url": "https://pypi.org/simple --trusted-host evil"},
     "python_app_pip_index_url"),
    ("gunicorn_supervisor", {"gunicorn_supervisor_environment": {"A": "1\"\ncommand=/bin/sh"}},
     "gunicorn_supervisor_environment['A']"),
    ("gunicorn_supervisor", {"gunicorn_supervisor_bind": "127.0.0.1:8000 --reload"}, "gunicorn_supervisor_bind"),
    ("gunicorn_supervisor", {"gunicorn_supervisor_workers": 0}, "gunicorn_supervisor_workers"),
], ids=["user", "no-keys", "port", "ufw-rule", "jail-time", "app-env", "app-requirements", "app-database-url",
        "app-release-command-newline", "app-release-command-option", "db-name", "db-client", "db-password", "db-backup-time", "db-backup-keep", "app-repo-token", "app-is-deploy-user",
        "build-is-app-user", "app-index",
        "gunicorn-env", "gunicorn-bind", "gunicorn-workers"])
def test_validate_refuses_bad_input_without_reaching_the_host(tmp_path, role, extra_vars, variable):
    run = validate(tmp_path, role, extra_vars)
    assert run.rc != 0 and run.total("unreachable") == 0, run.describe()
    assert any(variable in message for message in run.failure_messages), run.describe()
