"""Hostile input to the app roles' `validate` entry points, on the controller (issue 13).

Every free-text value python_app and gunicorn_supervisor write to the server (the release tree, pip's
command line, shared/env, gunicorn's config, the supervisor program) is spoiled one hostile pattern
at a time (tests/lib/hostile.py: ';', braces, a newline, a space, quotes, a leading '-'): the run
must fail naming every spoiled variable, with no connection to the host made, so nothing on it can
change. The host is an address where nothing listens (see test_validate_on_controller.py).
"""
import pytest

from test_validate_on_controller import validate
from tests.lib.hostile import PATTERNS, hostile_vars, unnamed

GOOD = {
    "python_app": {
        "python_app_name": "gigaflask", "python_app_user": "gigaflask", "python_app_group": "gigaflask",
        "python_app_build_user": "gigaflask-build",
        "python_app_root": "/srv/gigaflask", "python_app_src_excludes": [".git", "*.pyc"],
        "python_app_repo": "https://git.example.com/team/app.git", "python_app_version": "v1.2.0",
        "python_app_packages": ["python3-venv"], "python_app_requirements_file": "requirements/prod.txt",
        "python_app_gunicorn_version": "23.0.0", "python_app_pip_index_url": "https://pypi.example.com/simple",
        "python_app_pip_extra_index_urls": ["https://pypi.org/simple"],
        "python_app_pip_find_links": ["/srv/wheels"],
        # Values may hold any text but a newline (each is shell-quoted in shared/env); the names are
        # spoiled with them, and those must fail.
        "python_app_env": {"SENTRY_DSN": "https://key@sentry.example.com/1"},
        "python_app_database_url": "postgresql://gigaflask:s3cr%2Ft@127.0.0.1:5432/gigaflask",
        # python_app_release_command is argv, never a shell or a config line: its arguments may hold
        # spaces, quotes and ';'. Its control characters and leading '-' are test_validate_on_controller.py's.
    },
    "postgresql": {
        "postgresql_database": "gigaflask", "postgresql_user": "gigaflask",
        "postgresql_password_file": "/etc/postgresql/gigaflask.password",
        # postgresql_hba_clients (a list of {address}) is test_validate_on_controller.py's.
        "postgresql_listen_addresses": ["127.0.0.1"],
        "postgresql_shared_buffers": "256MB", "postgresql_effective_cache_size": "768MB",
        "postgresql_work_mem": "4MB", "postgresql_client_host": "db.example.com",
        "postgresql_backup_dir": "/var/backups/postgresql",
        # The password may hold any text but a control character: only the newline spoils it.
    },
    "gunicorn_supervisor": {
        "gunicorn_supervisor_bind": "127.0.0.1:8000", "gunicorn_supervisor_program": "gigaflask",
        "gunicorn_supervisor_app_root": "/srv/gigaflask", "gunicorn_supervisor_user": "gigaflask",
        "gunicorn_supervisor_env_file": "/srv/gigaflask/shared/env", "gunicorn_supervisor_wsgi_app": "app:app",
        "gunicorn_supervisor_worker_class": "gthread", "gunicorn_supervisor_forwarded_allow_ips": "127.0.0.1,::1",
        "gunicorn_supervisor_socket_group": "www-data", "gunicorn_supervisor_socket_mode": "0660",
        "gunicorn_supervisor_environment": {"APP_MODE": "production"},
        "gunicorn_supervisor_log_dir": "/var/log/supervisor", "gunicorn_supervisor_log_maxbytes": "50MB",
        "gunicorn_supervisor_healthz_path": "/healthz",
    },
}
# The source on the controller: python_app_source stays 'local' (its default), so python_app_repo
# and python_app_version are checked by pattern while the release is built from the sample app.


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("role", sorted(GOOD))
def test_hostile_values_fail_naming_each_variable_without_reaching_the_host(tmp_path, role, pattern):
    extra_vars = hostile_vars(GOOD[role], pattern)
    run = validate(tmp_path, role, extra_vars)
    assert run.rc != 0 and run.total("unreachable") == 0, run.describe()
    assert unnamed(run, extra_vars) == [], run.describe()


@pytest.mark.parametrize("role", sorted(GOOD))
def test_the_good_values_pass(tmp_path, role):
    run = validate(tmp_path, role, GOOD[role])
    assert run.rc == 0 and run.total("unreachable") == 0, run.describe()
