"""tls_selfsigned: a self-signed certificate with the right names, a root-only key, replaced only when needed.

Every fact is read back from the certificate and key with openssl on the target, never from the
role's own variables or files it templated.
"""
import re
from datetime import datetime, timedelta

import pytest

from conftest import assert_no_changes, assert_rejected_naming
from tests.lib.hostile import PATTERNS, hostile_vars, unnamed

DOMAIN = "gigaflask.test"
CERT = f"/etc/ssl/selfsigned/{DOMAIN}.crt"
KEY = f"/etc/ssl/private/{DOMAIN}-selfsigned.key"
CONVERGE_NAMES = {f"DNS:{DOMAIN}", f"DNS:www.{DOMAIN}", "DNS:app.gigaflask.test", "IP Address:192.0.2.10"}


def sans(host, cert):
    text = host.check_output(f"openssl x509 -in {cert} -noout -ext subjectAltName")
    return {name.strip() for name in text.splitlines()[-1].split(",")}


def fingerprint(host, path):
    return host.check_output(f"sha256sum {path}").split()[0]


def serial(host, cert):
    return host.check_output(f"openssl x509 -in {cert} -noout -serial")


def validity(host, cert):
    """(notBefore, notAfter) of a certificate as datetimes."""
    dates = dict(line.split("=", 1) for line in host.check_output(
        f"openssl x509 -in {cert} -noout -startdate -enddate").splitlines())
    parse = lambda value: datetime.strptime(value.replace("  ", " "), "%b %d %H:%M:%S %Y %Z")  # noqa: E731
    return parse(dates["notBefore"]), parse(dates["notAfter"])


def public_key(host, source):
    return host.check_output(source + " | openssl pkey -pubin -outform DER | sha256sum")


def key_and_certificate_match(host, key, cert):
    return public_key(host, f"openssl x509 -in {cert} -noout -pubkey") == \
        public_key(host, f"openssl pkey -in {key} -pubout")


def ssl_state(host):
    """Checksums of every file under the role's two directories: what 'nothing changed' means here."""
    return host.check_output("find /etc/ssl/selfsigned /etc/ssl/private -type f -exec sha256sum {} + | sort")


def test_certificate_names_the_domain_www_and_the_extra_names_and_ips(host):
    assert sans(host, CERT) == CONVERGE_NAMES
    subject = host.check_output(f"openssl x509 -in {CERT} -noout -subject")
    assert re.search(rf"CN ?= ?{re.escape(DOMAIN)}$", subject), subject


def test_certificate_is_a_self_signed_end_entity_server_certificate(host):
    text = host.check_output(f"openssl x509 -in {CERT} -noout -text")
    assert host.run(f"openssl verify -CAfile {CERT} -partial_chain {CERT}").rc == 0, "not signed by its own key"
    subject = host.check_output(f"openssl x509 -in {CERT} -noout -subject").split("=", 1)[1]
    issuer = host.check_output(f"openssl x509 -in {CERT} -noout -issuer").split("=", 1)[1]
    assert subject == issuer
    # CA:TRUE on a server certificate makes Firefox refuse it (CA certificate used as end entity).
    assert re.search(r"X509v3 Basic Constraints: critical\s+CA:FALSE", text), text
    assert re.search(r"X509v3 Extended Key Usage:\s+TLS Web Server Authentication", text), text
    assert "sha256WithRSAEncryption" in text


def test_certificate_is_valid_for_365_days_from_now(host):
    not_before, not_after = validity(host, CERT)
    assert not_after - not_before == timedelta(days=365)
    assert abs(datetime.utcnow() - not_before) < timedelta(hours=2)


def test_private_key_is_rsa_4096_readable_by_root_only_and_matches_the_certificate(host):
    key = host.file(KEY)
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600), oct(key.mode)
    assert "4096 bit" in host.check_output(f"openssl pkey -in {KEY} -noout -text | head -1")
    assert key_and_certificate_match(host, KEY, CERT)


@pytest.fixture(scope="module")
def ecdsa_paths(host, ansible_playbook):
    """A second certificate with an ECDSA key, made by the role next to the converged one."""
    cert, key = "/etc/ssl/selfsigned/ecdsa.crt", "/etc/ssl/private/ecdsa.key"
    host.run(f"rm -f {cert} {key}")  # start from nothing, also when verify runs twice
    extra = {"tls_selfsigned_key_type": "ecdsa", "tls_selfsigned_certificate_path": cert,
             "tls_selfsigned_privatekey_path": key, "tls_selfsigned_extra_names": [],
             "tls_selfsigned_extra_ips": []}
    run = ansible_playbook("converge.yml", extra_vars=extra)
    assert run.rc == 0, run.describe()
    return cert, key, extra


def test_ecdsa_key_type_makes_a_p256_key(host, ecdsa_paths):
    cert, key, _ = ecdsa_paths
    text = host.check_output(f"openssl pkey -in {key} -noout -text")
    assert "prime256v1" in text, text
    assert host.file(key).mode == 0o600
    assert "ecdsa-with-SHA256" in host.check_output(f"openssl x509 -in {cert} -noout -text")
    assert key_and_certificate_match(host, key, cert)
    assert sans(host, cert) == {f"DNS:{DOMAIN}", f"DNS:www.{DOMAIN}"}


def test_changing_the_names_makes_a_new_certificate_with_the_same_key(host, ansible_playbook, ecdsa_paths):
    cert, key, extra = ecdsa_paths
    key_before, serial_before = fingerprint(host, key), serial(host, cert)
    run = ansible_playbook("converge.yml", extra_vars={**extra, "tls_selfsigned_extra_names": ["new.gigaflask.test"]})
    assert run.rc == 0, run.describe()
    assert sans(host, cert) == {f"DNS:{DOMAIN}", f"DNS:www.{DOMAIN}", "DNS:new.gigaflask.test"}
    assert serial(host, cert) != serial_before
    assert fingerprint(host, key) == key_before, "a name change must not replace the key"


def test_certificate_close_to_expiry_is_replaced(host, ansible_playbook):
    cert, key = "/etc/ssl/selfsigned/expiring.crt", "/etc/ssl/private/expiring.key"
    host.run(f"rm -f {cert} {key}")
    paths = {"tls_selfsigned_certificate_path": cert, "tls_selfsigned_privatekey_path": key,
             "tls_selfsigned_key_type": "ecdsa"}
    short = ansible_playbook("converge.yml", extra_vars={**paths, "tls_selfsigned_valid_days": 2,
                                                         "tls_selfsigned_renew_days": 0})
    assert short.rc == 0, short.describe()
    not_before, not_after = validity(host, cert)
    assert not_after - not_before == timedelta(days=2)
    key_before, serial_before = fingerprint(host, key), serial(host, cert)
    # Same names, same key: only the 30-day renewal window says the 2-day certificate must go.
    run = ansible_playbook("converge.yml", extra_vars=paths)
    assert run.rc == 0, run.describe()
    assert serial(host, cert) != serial_before, run.describe()
    not_before, not_after = validity(host, cert)
    assert not_after - not_before == timedelta(days=365)
    assert fingerprint(host, key) == key_before


def test_check_mode_on_converged_host_changes_nothing(host, ansible_playbook):
    before = ssl_state(host)
    run = ansible_playbook("converge.yml", check=True, diff=True)
    assert_no_changes(run)
    assert ssl_state(host) == before


def test_check_mode_without_a_certificate_reports_the_change_and_writes_nothing(host, ansible_playbook):
    cert, key = "/etc/ssl/selfsigned/never.crt", "/etc/ssl/private/never.key"
    run = ansible_playbook("converge.yml", check=True, diff=True, extra_vars={
        "tls_selfsigned_certificate_path": cert, "tls_selfsigned_privatekey_path": key})
    assert run.rc == 0 and run.failed == 0, run.describe()
    assert any("Generate the private key" in task for task in run.changed_tasks), run.describe()
    assert not host.file(cert).exists and not host.file(key).exists


@pytest.mark.parametrize("extra_vars, variable", [
    ({"tls_selfsigned_domain": "gigaflask test"}, "tls_selfsigned_domain"),
    ({"tls_selfsigned_key_type": "dsa"}, "tls_selfsigned_key_type"),
    ({"tls_selfsigned_valid_days": -1}, "tls_selfsigned_valid_days"),
    ({"tls_selfsigned_renew_days": 400}, "tls_selfsigned_renew_days"),
    ({"tls_selfsigned_extra_ips": ["not-an-ip"]}, "tls_selfsigned_extra_ips"),
], ids=["domain-with-space", "unknown-key-type", "negative-validity", "renewal-longer-than-validity", "bad-ip"])
def test_bad_input_fails_before_any_change(host, ansible_playbook, extra_vars, variable):
    before = ssl_state(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert_rejected_naming(run, variable)
    assert ssl_state(host) == before


# Every free-text variable of the role, with a good value; tests.lib.hostile spoils them.
GOOD = {
    "tls_selfsigned_domain": DOMAIN,
    "tls_selfsigned_extra_names": ["app.gigaflask.test"],
    "tls_selfsigned_extra_ips": ["192.0.2.10"],
    "tls_selfsigned_certificate_path": CERT,
    "tls_selfsigned_privatekey_path": KEY,
    "tls_selfsigned_cryptography_venv": "/opt/ansible-cryptography",
    "tls_selfsigned_cryptography_version": "47.0.0",
    "tls_selfsigned_packages": ["python3-venv"],
}


def role_state(host):
    """The certificate and key, the cryptography virtualenv's files and the installed packages."""
    return (ssl_state(host)
            + host.check_output("find /opt/ansible-cryptography -printf '%p %s %T@\\n' | sort | sha256sum")
            + host.check_output("sha256sum /var/lib/dpkg/status"))


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_hostile_values_are_refused_naming_each_variable_and_change_nothing(host, ansible_playbook, pattern):
    before = role_state(host)
    run = ansible_playbook("converge.yml", extra_vars=hostile_vars(GOOD, pattern))
    assert run.rc != 0 and run.changed == 0, run.describe()
    assert not unnamed(run, GOOD), (unnamed(run, GOOD), run.describe())
    assert role_state(host) == before
