"""nginx_site as two independent auditors see it: testssl.sh over the network, gixy on `nginx -T`."""
import json
import re
import shutil
import subprocess

import pytest

from site_probe import DOMAIN, Site, gixy_issues, rejects_handshake, server_names

# testssl.sh severities, lowest first; WARN and FATAL mean the scan itself went wrong and count as
# findings, except for the checks below.
SEVERITIES = ["DEBUG", "INFO", "OK", "LOW", "MEDIUM", "HIGH", "CRITICAL"]

# testssl.sh 3.0's session resumption probes race TLS 1.3's post-handshake NewSessionTicket (which
# OpenSSL 1.1.1 still sends, stateful, with ssl_session_tickets off) and now and then report a
# "connect problem". Resumption carries no severity either way.
FLAKY_CHECKS = {"sessionresumption_ticket", "sessionresumption_ID"}

# Findings of MEDIUM or higher that are expected, each with the exact text testssl gives it.
ALLOWED_FINDINGS = {
    # Self-signed: no certificate authority vouches for the certificate. That is what self-signed
    # means; certbot replaces it with a trusted one.
    "cert_chain_of_trust": "failed (self signed).",
    # Self-signed: revocation is published by the issuing CA (CRL or OCSP URL in the certificate);
    # a self-signed certificate has no issuer to publish it.
    "cert_revocation": "Neither CRL nor OCSP URI provided",
    # Not the certificate: Mozilla "intermediate" sets ssl_prefer_server_ciphers off on purpose.
    # Every suite offered is an AEAD suite with forward secrecy (asserted below), so the client's
    # choice cannot be a weak one, and a client without AES hardware may pick ChaCha20. testssl.sh
    # 3.0 (Debian 12) rates any missing server order HIGH; testssl.sh 3.2 rates it LOW.
    "cipher_order": "NOT a cipher order configured",
}

# testssl.sh 3.0 sends no SNI in its renegotiation probes ("no SNI needed here", testssl.sh issues
# 2359 and 2389; 3.2 sends it). Where the catch-all refuses a handshake without one of our names,
# those probes meet the refusal, not the site: secure_renego cannot complete, and the "not vulnerable"
# of secure_client_renego only means no handshake took place. Both are measured with our name in SNI
# by test_renegotiation_is_secure_and_never_client_initiated instead.
NO_SNI_FINDINGS = {"secure_renego": "OpenSSL handshake didn't succeed"}


@pytest.fixture(scope="module")
def testssl_findings(host, tmp_path_factory):
    site = Site(host)
    report = tmp_path_factory.mktemp("testssl") / "report.json"
    # Everything but client simulation (-c) and the per-cipher listing (-E): half the time of a full
    # run, and neither yields a severity of its own.
    cmd = [shutil.which("testssl") or "testssl.sh", "--ip", site.ip, "--quiet", "--color", "0",
           "--warnings", "off", "-p", "-s", "-f", "-P", "-S", "-h", "-U",
           "--jsonfile", str(report), f"https://{DOMAIN}/"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr
    return json.loads(report.read_text()), proc.stdout


def test_testssl_finds_nothing_medium_or_higher_beyond_the_listed_exceptions(host, testssl_findings):
    findings, output = testssl_findings
    allowed = {**ALLOWED_FINDINGS, **(NO_SNI_FINDINGS if rejects_handshake(host) else {})}
    serious = {f["id"]: f["finding"] for f in findings
               if (f["severity"] not in SEVERITIES and not (f["severity"] == "WARN" and f["id"] in FLAKY_CHECKS))
               or (f["severity"] in SEVERITIES and SEVERITIES.index(f["severity"]) >= SEVERITIES.index("MEDIUM"))}
    unexpected = {fid: text for fid, text in serious.items() if allowed.get(fid) != text}
    assert not unexpected, f"{unexpected}\n{output[-4000:]}"


def test_testssl_sees_only_strong_forward_secret_suites_on_tls_1_2_and_1_3(testssl_findings):
    findings, output = {f["id"]: f for f in testssl_findings[0]}, testssl_findings[1]
    for protocol in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[protocol]["finding"] == "not offered", output
    assert findings["TLS1_2"]["finding"] == "offered"
    assert findings["TLS1_3"]["finding"].startswith("offered")
    for weak in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
        assert findings[f"cipherlist_{weak}"]["finding"] == "not offered", weak
    suites = findings["PFS_ciphers"]["finding"].split()
    assert suites and all(re.fullmatch(r"TLS_(AES_(128|256)_GCM|CHACHA20_POLY1305)_SHA(256|384)"
                                       r"|ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)", s)
                          for s in suites), suites
    assert findings["ALPN_HTTP2"]["finding"] == "h2"


def test_renegotiation_is_secure_and_never_client_initiated(host):
    rc, out = Site(host).renegotiate()
    assert "Secure Renegotiation IS supported" in out, out
    # The client did ask (a second ClientHello after R), and no second handshake was completed.
    assert "RENEGOTIATING" in out and len(re.findall(r"\], ClientHello$", out, re.MULTILINE)) == 2, out
    assert len(re.findall(r"\], ServerHello$", out, re.MULTILINE)) == 1, out
    assert re.search(r"<<< TLS 1\.2, Alert \[length 0002\], warning no_renegotiation$", out, re.MULTILINE), out
    assert rc != 0, out


def test_gixy_finds_nothing_but_the_deliberately_absent_hsts(host):
    issues = gixy_issues(host)
    # hsts_header is the only expected report: the site sends no HSTS on purpose while its
    # certificate is self-signed (nginx_site_hsts: auto; the Let's Encrypt handover test shows the
    # site's report disappear once a trusted certificate is in place). On nginx 1.18 the catch-all
    # HTTPS server completes handshakes too, so gixy asks it for HSTS as well, though it never answers
    # (444). Where it refuses the handshake, gixy asks it for no HSTS, and its 421 location is what
    # gixy's http2_misdirected_request asks of it.
    expected = ["gigaflask.test www.gigaflask.test"] if rejects_handshake(host) else \
        ["_", "gigaflask.test www.gigaflask.test"]
    unexpected = [issue for issue in issues if not (
        issue["plugin"] == "hsts_header" and server_names(issue) == expected)]
    assert not unexpected, json.dumps(unexpected, indent=1)
    assert [issue["plugin"] for issue in issues] == ["hsts_header"], json.dumps(issues, indent=1)
