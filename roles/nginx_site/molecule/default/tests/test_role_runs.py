"""nginx_site under repeated, checked, bad and broken runs: nothing changes that should not, and a
configuration nginx rejects is never activated."""
import pytest

from conftest import assert_no_changes, assert_rejected_naming
from site_probe import DOMAIN, SELFSIGNED_CERT, SITE_FILE, Site
from tests.lib.hostile import PATTERNS, hostile_vars, unnamed


def nginx_state(host):
    """Checksums of every file and link under /etc/nginx: what 'nothing changed' means for nginx."""
    return host.check_output("find /etc/nginx \\( -type f -o -type l \\) -printf '%p %l\\n' "
                             "-exec sh -c 'test -f \"$1\" && sha256sum < \"$1\"' _ {} \\; | sort")


@pytest.fixture(scope="module")
def site(host):
    return Site(host)


def test_check_mode_on_converged_host_changes_nothing(host, ansible_playbook):
    before = nginx_state(host)
    run = ansible_playbook("converge.yml", check=True, diff=True)
    assert_no_changes(run)
    assert nginx_state(host) == before


@pytest.mark.parametrize("extra_vars, variable", [
    ({"nginx_site_domain": "gigaflask test"}, "nginx_site_domain"),
    ({"nginx_site_upstream": "127.0.0.1"}, "nginx_site_upstream"),
    # Header values are written inside double quotes: what would end the quotes or expand a variable.
    ({"nginx_site_security_headers": {"X-Test": 'a" always; return 200 "x'}}, "nginx_site_security_headers"),
    ({"nginx_site_security_headers": {"X-Test": "a\nreturn 200;"}}, "nginx_site_security_headers"),
    ({"nginx_site_security_headers": {"X-Test": "$http_cookie"}}, "nginx_site_security_headers"),
    ({"nginx_site_security_headers": {"X-Test": "a\\"}}, "nginx_site_security_headers"),
    ({"nginx_site_name": "default"}, "nginx_site_name"),
], ids=["domain-with-space", "upstream-without-port", "header-value-quote", "header-value-newline",
        "header-value-variable", "header-value-backslash", "site-name-default"])
def test_bad_input_fails_before_any_change(host, site, ansible_playbook, extra_vars, variable):
    before, pid = nginx_state(host), site.master_pid()
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert_rejected_naming(run, variable)
    assert nginx_state(host) == before
    assert site.master_pid() == pid


@pytest.fixture(scope="module")
def rejected_change(host, site, ansible_playbook):
    """Converge once more with a directive nginx does not know; return the run and the state before."""
    before = {"site": host.file(SITE_FILE).sha256sum, "state": nginx_state(host), "pid": site.master_pid()}
    run = ansible_playbook("converge.yml", extra_vars={"nginx_site_extra_directives": ["bogus_directive on;"]})
    return run, before


def test_rejected_configuration_fails_the_play_with_nginx_own_message(rejected_change):
    run, _ = rejected_change
    assert run.rc != 0, run.describe()
    messages = "\n".join(run.failure_messages)
    assert 'unknown directive "bogus_directive"' in messages, run.describe()
    assert "nginx -t passes" in messages, run.describe()


def test_rejected_configuration_is_not_left_in_place(host, rejected_change):
    _, before = rejected_change
    assert host.file(SITE_FILE).sha256sum == before["site"]
    assert nginx_state(host) == before["state"], "no backup or half-written file may stay behind"
    assert host.run("nginx -t").rc == 0


def test_site_keeps_serving_the_previous_configuration_after_a_rejected_change(site, rejected_change):
    _, before = rejected_change
    response = site.curl(f"https://{DOMAIN}/")
    assert response.status == 200 and response.json()["stub"] == "upstream", response.describe()
    assert site.master_pid() == before["pid"], "nginx must not have been restarted"


def test_rejected_first_run_leaves_the_fresh_host_as_it_was(host, site, ansible_playbook):
    # Back to a fresh install: no site of ours, the distribution's default site enabled and served.
    host.run("rm -f /etc/nginx/sites-enabled/gigaflask /etc/nginx/sites-available/gigaflask"
             " && ln -s /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default"
             " && systemctl reload nginx && sleep 1")
    try:
        fresh, pid = nginx_state(host), site.master_pid()
        assert site.curl(f"http://{site.ip}/").status == 200, "the default site should be served now"
        run = ansible_playbook("site_entry.yml", extra_vars={"nginx_site_extra_directives": ["bogus_directive on;"]})
        assert run.rc != 0, run.describe()
        assert 'unknown directive "bogus_directive"' in "\n".join(run.failure_messages), run.describe()
        # No backup to restore: the new file and link are removed and the default site is enabled again.
        assert nginx_state(host) == fresh
        assert host.run("nginx -t").rc == 0
        assert site.curl(f"http://{site.ip}/").status == 200
        assert site.master_pid() == pid
    finally:
        restored = ansible_playbook("site_entry.yml")
    assert restored.rc == 0, restored.describe()
    assert site.curl(f"https://{DOMAIN}/").status == 200


# Every free-text variable of the role, with a good value; tests.lib.hostile spoils them.
GOOD = {
    "nginx_site_domain": DOMAIN,
    "nginx_site_extra_names": ["app.gigaflask.test"],
    "nginx_site_name": "gigaflask",
    "nginx_site_upstream": "127.0.0.1:8000",
    "nginx_site_certificate_path": SELFSIGNED_CERT,
    "nginx_site_privatekey_path": f"/etc/ssl/private/{DOMAIN}-selfsigned.key",
    "nginx_site_chain_path": "/etc/ssl/selfsigned/chain.pem",
    "nginx_site_letsencrypt_name": DOMAIN,
    "nginx_site_letsencrypt_live_dir": "/etc/letsencrypt/live",
    "nginx_site_acme_webroot": "/var/www/acme",
    "nginx_site_resolvers": ["127.0.0.53"],
    "nginx_site_static_root": "/srv/gigaflask/current/static",
    "nginx_site_static_url": "/static/",
    "nginx_site_static_expires": "7d",
    "nginx_site_gzip_types": ["text/css"],
    "nginx_site_client_max_body_size": "10m",
    "nginx_site_proxy_connect_timeout": "5s",
    "nginx_site_proxy_send_timeout": "60s",
    "nginx_site_proxy_read_timeout": "60s",
    # Keys and values are spoiled; a value may legitimately hold spaces, ';' and quotes ' (see
    # test_a_header_value_with_semicolons_and_braces_stays_one_header_value).
    "nginx_site_security_headers": {"X-Frame-Options": "DENY"},
    "nginx_site_ssl_ciphers": ["ECDHE-RSA-AES128-GCM-SHA256"],
    "nginx_site_ssl_ecdh_curves": ["X25519"],
    "nginx_site_default_certificate_path": "/etc/ssl/certs/ssl-cert-snakeoil.pem",
    "nginx_site_default_privatekey_path": "/etc/ssl/private/ssl-cert-snakeoil.key",
    "nginx_site_extra_directives": ["access_log off;"],
    "nginx_site_packages": ["nginx"],
}


def role_state(host):
    """nginx's files, the webroot the role creates, the installed packages."""
    return (nginx_state(host)
            + host.check_output("find /var/www -printf '%p %m %u %T@\\n' | sort")
            + host.check_output("sha256sum /var/lib/dpkg/status"))


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_hostile_values_are_refused_naming_each_variable_and_change_nothing(host, site, ansible_playbook, pattern):
    before, pid = role_state(host), site.master_pid()
    run = ansible_playbook("converge.yml", extra_vars=hostile_vars(GOOD, pattern), tags=["nginx"])
    assert run.rc != 0 and run.changed == 0, run.describe()
    assert not unnamed(run, GOOD), (unnamed(run, GOOD), run.describe())
    assert role_state(host) == before
    assert site.master_pid() == pid
    response = site.curl(f"https://{DOMAIN}/")
    assert response.status == 200 and response.json()["stub"] == "upstream", response.describe()


def test_a_header_value_with_semicolons_and_braces_stays_one_header_value(host, site, ansible_playbook):
    # Inside nginx's double quotes ';', braces and single quotes are text: the value cannot end the
    # directive. The header arrives verbatim, and the app still answers (no `return` took effect).
    value = "default-src 'self'; return 200 {pwned}"
    headers = {"X-Content-Type-Options": "nosniff", "X-Test-Quoted": value}
    run = ansible_playbook("site_entry.yml", extra_vars={"nginx_site_security_headers": headers})
    try:
        assert run.rc == 0 and run.failed == 0, run.describe()
        response = site.curl(f"https://{DOMAIN}/")
        assert response.headers.get("x-test-quoted") == value, response.describe()
        assert response.status == 200 and response.json()["stub"] == "upstream", response.describe()
    finally:
        restored = ansible_playbook("site_entry.yml")
    assert restored.rc == 0, restored.describe()
    assert "x-test-quoted" not in site.curl(f"https://{DOMAIN}/").headers
