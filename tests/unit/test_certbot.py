"""The certbot role's order decision (plugins/filter/certbot.py), on outputs captured from the
certbot scenario's target (Ubuntu 20.04, OpenSSL 1.1.1f, certbot 0.40 from the package, Pebble):

- openssl-*.txt: `openssl x509 -in live/<name>/cert.pem -noout -enddate -ext subjectAltName
  -checkend 604800` (or -checkend 315360000 for "expiring": Pebble's certificates last 5 years);
- renewal-certbot-*.conf: /etc/letsencrypt/renewal/gigaflask.test.conf as certbot wrote it.
"""
from pathlib import Path

import pytest

from ansible_collections.gigaflask.stack.plugins.filter.certbot import (
    certbot_order_reasons, certificate_names, not_after, renewal_server)

FIXTURES = Path(__file__).parent / "fixtures" / "certbot"
NAMES = ["gigaflask.test", "www.gigaflask.test"]
PEBBLE = "https://gf-web-base-certbot-pebble:14000/dir"


def fixture(name):
    return (FIXTURES / name).read_text()


def state(**changes):
    base = {"cert_name": "gigaflask.test", "exists": True, "openssl": fixture("openssl-two-names-valid.txt"),
            "expiring": False, "min_days": 7, "renewal_conf": fixture("renewal-certbot-0.40.conf"),
            "domains": NAMES, "directory": PEBBLE}
    return {**base, **changes}


def test_names_are_read_from_openssl_subject_alt_name_text():
    assert certificate_names(fixture("openssl-two-names-valid.txt")) == sorted(NAMES)
    assert certificate_names(fixture("openssl-three-names-valid.txt")) == sorted(NAMES + ["api.gigaflask.test"])
    assert certificate_names("") == []


def test_the_expiry_line_is_quoted():
    assert not_after(fixture("openssl-three-names-expiring.txt")) == "notAfter=Dec  2 07:05:18 2031 GMT"


@pytest.mark.parametrize("conf", sorted(p.name for p in FIXTURES.glob("renewal-*.conf")))
def test_the_server_is_read_from_each_certbot_renewal_configuration(conf):
    assert renewal_server(fixture(conf)) == PEBBLE


def test_no_reason_when_the_certificate_fits():
    assert certbot_order_reasons(state()) == []


def test_names_compare_without_order_or_case():
    assert certbot_order_reasons(state(domains=["WWW.gigaflask.test", "gigaflask.test"])) == []


def test_no_certificate_yet():
    assert certbot_order_reasons(state(exists=False, openssl="", renewal_conf="")) == [
        "there is no certificate gigaflask.test yet"]


def test_a_name_added_or_removed_is_a_reason():
    added = certbot_order_reasons(state(domains=NAMES + ["api.gigaflask.test"]))
    assert added == ["the names change from gigaflask.test, www.gigaflask.test to "
                     "api.gigaflask.test, gigaflask.test, www.gigaflask.test"]
    removed = certbot_order_reasons(state(openssl=fixture("openssl-three-names-valid.txt")))
    assert removed == ["the names change from api.gigaflask.test, gigaflask.test, www.gigaflask.test to "
                       "gigaflask.test, www.gigaflask.test"]


def test_expiry_within_the_minimum_is_a_reason():
    reasons = certbot_order_reasons(state(openssl=fixture("openssl-three-names-expiring.txt"), expiring=True,
                                          domains=NAMES + ["api.gigaflask.test"]))
    assert reasons == ["it expires within 7 days (notAfter=Dec  2 07:05:18 2031 GMT)"]


def test_another_acme_server_is_a_reason():
    staging = "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert certbot_order_reasons(state(directory=staging)) == [f"it comes from {PEBBLE}, not from {staging}"]
    assert certbot_order_reasons(state(renewal_conf="")) == [f"it comes from an unknown server, not from {PEBBLE}"]


def test_every_reason_is_given():
    reasons = certbot_order_reasons(state(domains=["gigaflask.test"], expiring=True, directory="https://x.test/dir"))
    assert [reason.split(" ")[1] for reason in reasons] == ["names", "expires", "comes"]


def test_a_malformed_state_is_an_error_of_the_role():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError):
        certbot_order_reasons({"exists": True})
