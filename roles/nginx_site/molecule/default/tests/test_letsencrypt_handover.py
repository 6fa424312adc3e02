"""The handover certbot relies on: once /etc/letsencrypt/live/<name>/ holds a certificate, the site
serves it (with HSTS, and OCSP stapling when the certificate names a responder), nginx reloads
without restarting, and re-running the whole converge keeps it.

The "Let's Encrypt" certificates here come from a throwaway CA made by the test, laid out the way
certbot lays them out (live/ symlinks into archive/).
"""
import datetime
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from site_probe import DOMAIN, NAMES, Site, gixy_issues, rejects_handshake, server_names

LIVE = f"/etc/letsencrypt/live/{DOMAIN}"
ARCHIVE = f"/etc/letsencrypt/archive/{DOMAIN}"


def pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gigaflask test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_leaf(ca, ocsp_url=None):
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=20))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if ocsp_url:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def install_like_certbot(host, ca, leaf, version):
    """Write archive/<name>/*<version>.pem and point live/<name>/*.pem at them, as certbot does."""
    key, cert = leaf
    files = {"cert": pem(cert), "chain": pem(ca[1]), "fullchain": pem(cert) + pem(ca[1]), "privkey": pem(key)}
    host.run(f"mkdir -p {ARCHIVE} {LIVE} && chmod 700 /etc/letsencrypt/archive /etc/letsencrypt/live")
    for name, content in files.items():
        target = f"{ARCHIVE}/{name}{version}.pem"
        assert host.run(f"cat > {target} <<'PEM'\n{content}PEM\n").rc == 0
        assert host.run(f"ln -sfn ../../archive/{DOMAIN}/{name}{version}.pem {LIVE}/{name}.pem").rc == 0


@pytest.fixture(scope="module")
def handover(host, ansible_playbook, tmp_path_factory):
    """Put a CA-issued certificate in place, hand over through tasks_from: site.yml; undo afterwards."""
    site = Site(host)
    ca = make_ca()
    cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
    cafile.write_text(pem(ca[1]))
    pid = site.master_pid()
    install_like_certbot(host, ca, make_leaf(ca), 1)
    run = ansible_playbook("site_entry.yml")
    yield {"site": site, "ca": ca, "cafile": str(cafile), "run": run, "pid": pid}
    host.run("rm -rf /etc/letsencrypt")
    ansible_playbook("site_entry.yml")


def test_handover_through_site_entry_point_succeeds_and_reloads(handover):
    run = handover["run"]
    assert run.rc == 0 and run.failed == 0, run.describe()
    assert any("Reload nginx" in task for task in run.changed_tasks), run.describe()
    assert handover["site"].master_pid() == handover["pid"], "nginx must reload, not restart"


@pytest.mark.parametrize("name", NAMES)
def test_site_serves_the_letsencrypt_certificate(handover, name):
    response = handover["site"].curl(f"https://{name}/", cacert=handover["cafile"])
    assert response.rc == 0 and response.status == 200, response.describe()


def test_hsts_is_on_with_a_trusted_certificate(handover):
    response = handover["site"].curl(f"https://{DOMAIN}/", cacert=handover["cafile"])
    assert response.headers.get("strict-transport-security") == "max-age=63072000", response.describe()


def test_no_ocsp_stapling_for_a_certificate_without_a_responder(host, handover):
    # Let's Encrypt certificates no longer name an OCSP responder: stapling would be dead config.
    dump = host.check_output("nginx -T 2>/dev/null")
    assert "ssl_stapling on;" not in dump


def test_gixy_has_nothing_to_say_about_the_site_with_a_trusted_certificate(host, handover):
    issues = gixy_issues(host)
    # The site's report is gone. On nginx 1.18 the catch-all HTTPS server remains: it completes the
    # handshake, so gixy asks it for HSTS, though it never answers (444). Where it refuses the
    # handshake, gixy asks nothing of it and has nothing left to say.
    expected = [] if rejects_handshake(host) else [("hsts_header", ["_"])]
    assert [(issue["plugin"], server_names(issue)) for issue in issues] == expected, issues


def test_rerunning_the_whole_converge_keeps_the_letsencrypt_certificate_and_serves_its_renewal(
        host, handover, ansible_playbook):
    # certbot renewed the certificate (same names, paths and settings) and the whole converge runs
    # again: the site must stay on Let's Encrypt and, because the site file carries the certificate's
    # checksum, test and reload nginx for the renewed certificate. Nothing else may change.
    site = handover["site"]
    renewed = make_leaf(handover["ca"])
    install_like_certbot(host, handover["ca"], renewed, 2)
    run = ansible_playbook("converge.yml")
    assert run.rc == 0 and run.failed == 0, run.describe()
    changed = {task.split(": ", 1)[1].split(" : ")[-1] for task in run.changed_tasks}
    assert changed == {"Render the site configuration", "Remove the backup of the previous site configuration",
                       "Reload nginx"}, run.describe()
    assert site.served_certificate() == pem(renewed[1]), "nginx must serve the renewed certificate"
    response = site.curl(f"https://{DOMAIN}/", cacert=handover["cafile"])
    assert response.rc == 0 and "strict-transport-security" in response.headers, response.describe()
    assert site.master_pid() == handover["pid"]


def test_certificate_naming_a_responder_is_stapled_with_its_chain(host, handover, ansible_playbook):
    install_like_certbot(host, handover["ca"], make_leaf(handover["ca"], ocsp_url="http://ocsp.gigaflask.test/"), 3)
    run = ansible_playbook("site_entry.yml")
    assert run.rc == 0, run.describe()
    dump = host.check_output("nginx -T 2>/dev/null")
    assert "ssl_stapling on;" in dump and "ssl_stapling_verify on;" in dump, dump
    assert re.search(rf"ssl_trusted_certificate {re.escape(LIVE)}/chain\.pem;", dump), dump
    assert re.search(r"resolver 127\.0\.0\.53 valid=300s;", dump), dump
