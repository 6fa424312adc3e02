"""playbooks/validate.yml on the controller: the input of tls_selfsigned, nginx_site and certbot, and
the rule that wires certbot to nginx_site in site.yml, fail naming the variables with no connection.

The root inventory's host (203.0.113.10, a documentation address) is never reachable: a run that
tried to connect would end `unreachable`, not with the message asserted here.
"""
import pytest

from conftest import ROOT, run_playbook

# Start at the first of these roles' checks: the roles before them in validate.yml are other
# helpers' (their checks need their own inputs, such as key files on the controller).
START = "gigaflask.stack.tls_selfsigned : Validating*"
ENABLED = {"gigaflask_letsencrypt_email": "admin@example.com"}
# group_vars/all.yml derives nginx_site_letsencrypt_name from certbot_cert_name: only setting both
# (as an operator's own group_vars could) makes them disagree.
DISAGREE = {"certbot_cert_name": "other.example.com", "nginx_site_letsencrypt_name": "example.com"}


def validate(extra_vars):
    run = run_playbook(ROOT / "playbooks/validate.yml", inventory=ROOT / "inventory", extra_vars=extra_vars,
                       args=["--start-at-task", START])
    assert run.total("unreachable") == 0, run.describe()
    return run


def test_start_task_exists_so_the_runs_below_check_these_roles():
    run = validate(ENABLED)
    names = [task["task"]["name"] for task in run.tasks]
    assert any(name.startswith("gigaflask.stack.tls_selfsigned : ") for name in names), run.describe()
    assert "Check that nginx serves the certificate certbot obtains" in names, run.describe()
    assert run.rc == 0 and run.failed == 0, run.describe()


@pytest.mark.parametrize("extra_vars, variables", [
    (DISAGREE, ["certbot_cert_name", "nginx_site_letsencrypt_name"]),
    ({"nginx_site_letsencrypt_name": "other.example.com"}, ["certbot_cert_name", "nginx_site_letsencrypt_name"]),
    ({"certbot_webroot": "/srv/acme"}, ["certbot_webroot", "nginx_site_acme_webroot"]),
    ({"certbot_reload_nginx": False}, ["certbot_reload_nginx"]),
], ids=["cert-name", "letsencrypt-name", "webroot", "no-reload"])
def test_certbot_and_nginx_site_must_agree(extra_vars, variables):
    run = validate({**ENABLED, **extra_vars})
    assert run.rc != 0, run.describe()
    messages = "\n".join(run.failure_messages)
    assert all(variable in messages for variable in variables), run.describe()


def test_the_rule_waits_until_certbot_is_configured():
    run = validate(DISAGREE)
    assert run.rc == 0 and run.failed == 0, run.describe()


@pytest.mark.parametrize("extra_vars, variable", [
    ({"tls_selfsigned_extra_names": ["ok.example.com", "bad name"]}, "tls_selfsigned_extra_names"),
    ({"nginx_site_client_max_body_size": "10m; return 200 pwned"}, "nginx_site_client_max_body_size"),
    ({"nginx_site_extra_directives": ["access_log off; return 200;"]}, "nginx_site_extra_directives"),
    ({"certbot_email": "-admin@example.com"}, "certbot_email"),
    ({"certbot_venv_path": "/opt"}, "certbot_venv_path"),
], ids=["tls-name", "nginx-size", "nginx-directive", "certbot-email", "certbot-venv-path"])
def test_bad_input_fails_on_the_controller_naming_the_variable(extra_vars, variable):
    run = validate({**ENABLED, **extra_vars})
    assert run.rc != 0, run.describe()
    assert any(variable in message for message in run.failure_messages), run.describe()
