"""nginx_site: what a client on the network gets from the converged site (self-signed certificate).

Requests come from the controller to the container's address over the Docker bridge; the stub
upstream (prepare.yml) answers with JSON describing the request it received.
"""
import re
import uuid

import pytest

from conftest import journal
from site_probe import DOMAIN, NAMES, SELFSIGNED_CERT, SITE_FILE, Site, rejects_handshake, server_blocks


@pytest.fixture(scope="module")
def site(host):
    return Site(host)


@pytest.mark.parametrize("name", NAMES)
def test_http_redirects_to_https_with_301(site, name):
    response = site.curl(f"http://{name}/some/page?x=1&y=2")
    assert response.status == 301, response.describe()
    assert response.headers["location"] == f"https://{name}/some/page?x=1&y=2"


def test_acme_challenge_is_served_over_http_from_the_webroot(host, site):
    token = uuid.uuid4().hex
    host.run(f"echo {token}.key-authorization > /var/www/acme/.well-known/acme-challenge/{token}")
    try:
        response = site.curl(f"http://{DOMAIN}/.well-known/acme-challenge/{token}")
        missing = site.curl(f"http://{DOMAIN}/.well-known/acme-challenge/no-such-token")
    finally:
        host.run(f"rm -f /var/www/acme/.well-known/acme-challenge/{token}")
    assert response.status == 200, response.describe()
    assert response.body.decode().strip() == f"{token}.key-authorization"
    # A missing token is a plain 404, not a redirect: ACME servers do not follow redirects to a bad certificate.
    assert missing.status == 404, missing.describe()


@pytest.mark.parametrize("name", NAMES)
def test_https_answers_from_the_upstream_with_forwarded_headers(site, name):
    response = site.curl(f"https://{name}/whoami?q=1")
    assert response.status == 200, response.describe()
    echo = response.json()
    assert echo["stub"] == "upstream" and echo["path"] == "/whoami?q=1"
    headers = echo["headers"]
    assert headers["host"] == name
    assert headers["x-real-ip"] == site.client_ip
    assert headers["x-forwarded-for"] == site.client_ip
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == name
    assert headers["x-forwarded-port"] == "443"


def test_client_cannot_spoof_its_address_to_the_app(site):
    response = site.curl(f"https://{DOMAIN}/", "-H", "X-Forwarded-For: 203.0.113.9", "-H", "X-Real-IP: 203.0.113.9")
    headers = response.json()["headers"]
    assert headers["x-real-ip"] == site.client_ip
    # nginx is the edge: the client's own list is dropped, so nothing in it can be mistaken for the
    # client's address (test_proxy_headers.py tries every forwarding header).
    assert headers["x-forwarded-for"] == site.client_ip


@pytest.mark.parametrize("name", NAMES)
def test_certificate_verifies_for_both_names_against_the_self_signed_certificate(site, name, tmp_path):
    cacert = site.fetch(SELFSIGNED_CERT, tmp_path)
    response = site.curl(f"https://{name}/", cacert=cacert)
    assert response.rc == 0 and response.status == 200, response.describe()


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_versions_are_refused_by_the_server(site, version):
    # SECLEVEL=0 makes this client offer TLS 1.0/1.1 at all: the refusal seen is the server's.
    rc, out = site.s_client(version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    assert "alert protocol version" in out, out
    assert "Cipher is (NONE)" in out, out


@pytest.mark.parametrize("version, protocol", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_1_2_and_1_3_are_accepted(site, version, protocol):
    rc, out = site.s_client(version)
    assert rc == 0, out
    assert re.search(rf"New, {re.escape(protocol)}, Cipher is (ECDHE-|TLS_)", out), out


def test_http2_is_negotiated_via_alpn(site):
    _, out = site.s_client("-alpn", "h2,http/1.1")
    assert "ALPN protocol: h2" in out, out
    response = site.curl(f"https://{DOMAIN}/", "--http2")
    assert response.headers and response.status == 200, response.describe()
    assert response.rc == 0


def test_security_headers_are_sent_and_hsts_is_not_with_a_self_signed_certificate(site):
    response = site.curl(f"https://{DOMAIN}/")
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"] == "frame-ancestors 'none'"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in headers, "HSTS with a self-signed certificate locks visitors out"
    assert headers["server"] == "nginx", "server_tokens off hides the version"


def test_static_files_are_served_by_nginx_with_cache_headers_and_gzip(host, site):
    expected = host.file("/srv/gigaflask/current/static/style.css").content
    plain = site.curl(f"https://{DOMAIN}/static/style.css")
    assert plain.status == 200, plain.describe()
    assert plain.body == expected
    assert plain.headers["cache-control"] == "max-age=604800"
    assert "expires" in plain.headers
    assert plain.headers["x-content-type-options"] == "nosniff", "security headers apply to static files too"
    compressed = site.curl(f"https://{DOMAIN}/static/style.css", "-H", "Accept-Encoding: gzip")
    assert compressed.headers.get("content-encoding") == "gzip", compressed.describe()
    assert "/static/" not in site.stub_log(), "static files must not reach the app"


def test_app_responses_are_not_compressed(site):
    # BREACH: compressing responses that mix secrets with request data leaks the secrets.
    response = site.curl(f"https://{DOMAIN}/", "-H", "Accept-Encoding: gzip")
    assert response.status == 200
    assert "content-encoding" not in response.headers, response.describe()


def test_request_bodies_above_the_limit_are_refused_before_the_app(site):
    small = site.curl(f"https://{DOMAIN}/upload", "--data-binary", "@-", data=b"x" * 1_000_000)
    assert small.status == 200 and small.json()["body_length"] == 1_000_000, small.describe()
    large = site.curl(f"https://{DOMAIN}/upload", "--data-binary", "@-", data=b"x" * 11_000_000)
    assert large.status == 413, large.describe()


# What a request for a name we do not serve gets, by case: the curl exit code, and the HTTP status.
# 52: the server closed the connection without sending anything (nginx's 444).
NO_ANSWER = (52, 0)
# 35: the TLS handshake was refused (ssl_reject_handshake), before any certificate.
HANDSHAKE_REFUSED = (35, 0)
# 92: over HTTP/2, 444 resets the stream without a response (curl: "stream 1 was not closed cleanly").
H2_NO_ANSWER = (92, 0)
# A connection opened for our name, carrying a request for another (a spoofed Host, or an HTTP/2
# connection reused for another name), is misdirected: 421, so a browser retries on a connection
# of its own, where its handshake is refused.
MISDIRECTED = (0, 421)


@pytest.mark.parametrize("case", ["http-unknown-host", "https-unknown-sni", "https-known-sni-unknown-host",
                                  "https-known-sni-unknown-host-http2", "https-by-address"])
def test_unknown_host_is_refused_and_never_reaches_the_app(host, site, case):
    evil = f"evil-{uuid.uuid4().hex[:8]}.test"
    if case == "http-unknown-host":
        response = site.curl(f"http://{site.ip}/", "-H", f"Host: {evil}")
    elif case == "https-unknown-sni":
        response = site.curl(f"https://{evil}/", "--http1.1", names=(evil,))
    elif case == "https-known-sni-unknown-host":
        response = site.curl(f"https://{DOMAIN}/", "--http1.1", "-H", f"Host: {evil}")
    elif case == "https-known-sni-unknown-host-http2":
        response = site.curl(f"https://{DOMAIN}/", "--http2", "-H", f"Host: {evil}")
    else:
        response = site.curl(f"https://{site.ip}/", "--http1.1")
    if not rejects_handshake(host):
        # nginx 1.18: every HTTPS case completes a handshake (unknown names see the snakeoil
        # certificate) and the catch-all closes the connection.
        expected = {"https-known-sni-unknown-host-http2": H2_NO_ANSWER}.get(case, NO_ANSWER)
    else:
        expected = {"http-unknown-host": NO_ANSWER, "https-unknown-sni": HANDSHAKE_REFUSED,
                    "https-by-address": HANDSHAKE_REFUSED}.get(case, MISDIRECTED)
    assert (response.rc, response.status) == expected, response.describe()
    assert evil not in site.stub_log(), journal(host, "stub-upstream")


def test_unknown_names_do_not_get_our_certificate(host, site):
    ours = site.served_certificate()
    if rejects_handshake(host):
        # Where nginx can (1.19.4+), no certificate at all: the handshake is refused.
        for servername in ("evil.test", None):
            rc, out = site.s_client(servername=servername)
            assert rc != 0 and "BEGIN CERTIFICATE" not in out, out
        return
    served = site.served_certificate(servername="evil.test")
    assert served != ours, "the catch-all server must not reveal the site's certificate"


def test_nginx_accepts_the_whole_configuration_without_a_warning(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_site_is_enabled_by_symlink_and_the_default_site_is_gone(host):
    enabled = host.file("/etc/nginx/sites-enabled/gigaflask")
    assert enabled.is_symlink and enabled.linked_to == SITE_FILE
    dump = host.check_output("nginx -T 2>/dev/null")
    files = re.findall(r"^# configuration file (\S+):$", dump, re.MULTILINE)
    assert "/etc/nginx/sites-enabled/gigaflask" in files
    assert not any(name.endswith("/default") for name in files), files


def test_every_server_listens_on_ipv4_and_ipv6(host):
    sockets = host.check_output("ss -ltnH")
    for address in ("0.0.0.0:80", "0.0.0.0:443", "[::]:80", "[::]:443"):
        assert re.search(rf"\s{re.escape(address)}\s", sockets), sockets
    # Both of our servers and both catch-alls, each on both families: a server missing its [::]
    # listen would leave IPv6 visitors to the catch-all.
    site = f"{DOMAIN} www.{DOMAIN}"
    expected = {
        ("_", ("80 default_server", "[::]:80 default_server")),
        ("_", ("443 ssl http2 default_server", "[::]:443 ssl http2 default_server")),
        (site, ("80", "[::]:80")),
        (site, ("443 ssl http2", "[::]:443 ssl http2")),
    }
    assert {(name, tuple(listens)) for name, listens in server_blocks(host)} == expected


def test_effective_proxy_settings(host):
    dump = host.check_output("nginx -T 2>/dev/null")
    for directive in ("proxy_connect_timeout 5s;", "proxy_send_timeout 60s;", "proxy_read_timeout 60s;",
                      "client_max_body_size 10m;", "server 127.0.0.1:8000;", "ssl_session_tickets off;",
                      "ssl_prefer_server_ciphers off;", "server_tokens off;"):
        assert directive in dump, directive
