"""What the app learns from forwarding headers a client sends through nginx: nothing (issue 13).

A client sends a spoofed value for every forwarding header gunicorn, Werkzeug's ProxyFix and the
usual frameworks and proxies read; the stub upstream echoes every header line it received. Each one
either carries what nginx itself saw (client address, https, host, port), exactly once, or is not
there. Both of gunicorn's kinds of bind are tried: 127.0.0.1:8000 and a unix socket in a directory
only its owner, root and www-data may enter (the stubs of prepare.yml).
"""
import json

import pytest

from site_probe import DOMAIN, Site

UNIX_SOCKET = "/run/stub-upstream/stub.sock"
SPOOF = "203.0.113.66"

# Set by nginx from what it saw; the client's value must never arrive, and nginx's only once.
SET_BY_NGINX = ["Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
                "X-Forwarded-Port"]
# Read by gunicorn (secure_scheme_headers), ProxyFix (x_prefix), RFC 7239, other frameworks,
# proxies and CDNs, and httpoxy's Proxy: none may reach the app at all.
REMOVED = ["Forwarded", "X-Forwarded-Prefix", "X-Forwarded-Protocol", "X-Forwarded-Ssl", "X-Forwarded-Scheme",
           "X-Scheme", "X-Url-Scheme", "Front-End-Https", "X-Forwarded-Server", "X-Forwarded-By",
           "X-Original-Forwarded-For", "X-Client-IP", "Client-IP", "True-Client-IP", "X-Cluster-Client-IP",
           "CF-Connecting-IP", "Fastly-Client-IP", "X-ProxyUser-Ip", "X-Original-URL", "X-Rewrite-URL",
           "X-Original-Host", "X-Host", "Proxy"]
# With underscores a WSGI server would map these onto the same environ keys as the real headers
# (HTTP_X_FORWARDED_FOR), and gunicorn takes SCRIPT_NAME and PATH_INFO from a trusted peer: nginx
# must drop them.
UNDERSCORED = ["X_Forwarded_For", "X_Forwarded_Proto", "X_Forwarded_Host", "X_Real_IP", "SCRIPT_NAME",
               "PATH_INFO", "REMOTE_USER"]


def spoofed_value(header):
    """A value a client might try for this header; each carries SPOOF, so any leak is visible."""
    if header == "Host":
        return None  # the Host header decides the server block: spoofing it is the catch-all test's job
    if header in ("Forwarded",):
        return f"for={SPOOF};proto=http;host=evil.test"
    if header.lower() in ("x-forwarded-proto", "x-forwarded-protocol", "x-forwarded-scheme", "x-scheme",
                          "x-url-scheme"):
        return f"http-{SPOOF}"
    if header.lower() in ("x-forwarded-ssl", "front-end-https"):
        return f"off-{SPOOF}"
    if header.lower() in ("x-forwarded-host", "x-original-host", "x-host", "x-forwarded-server"):
        return f"evil-{SPOOF}.test"
    if header.lower() in ("x-forwarded-port",):
        return f"8443-{SPOOF}"
    if header.lower() in ("x-forwarded-prefix", "x-original-url", "x-rewrite-url", "script_name", "path_info"):
        return f"/admin-{SPOOF}"
    if header == "Proxy":
        return f"http://{SPOOF}:3128"
    return SPOOF


@pytest.fixture(scope="module")
def site(host):
    return Site(host)


@pytest.fixture(scope="module", params=["tcp", "unix"])
def upstream(request, host, ansible_playbook):
    """The site proxying to the TCP stub (as converged) or, re-rendered, to the unix socket stub."""
    if request.param == "tcp":
        yield "127.0.0.1:8000"
        return
    # As the app's socket will be: nginx's workers (www-data) reach it, another unprivileged user
    # cannot even enter its directory.
    directory = host.file("/run/stub-upstream")
    assert (directory.group, directory.mode & 0o007) == ("www-data", 0), (directory.group, oct(directory.mode))
    assert host.run(f"su -s /bin/sh -c 'test -w {UNIX_SOCKET}' daemon").rc != 0
    assert host.run(f"su -s /bin/sh -c 'test -w {UNIX_SOCKET}' www-data").rc == 0
    run = ansible_playbook("site_entry.yml", extra_vars={"nginx_site_upstream": f"unix:{UNIX_SOCKET}"})
    assert run.rc == 0 and run.failed == 0, run.describe()
    try:
        yield UNIX_SOCKET
    finally:
        restored = ansible_playbook("site_entry.yml")
        assert restored.rc == 0, restored.describe()


@pytest.mark.parametrize("http", ["--http1.1", "--http2"])
def test_client_supplied_forwarding_headers_never_reach_the_app(site, upstream, http):
    sent = {h: spoofed_value(h) for h in SET_BY_NGINX + REMOVED + UNDERSCORED if spoofed_value(h)}
    args = [http]
    for header, value in sent.items():
        args += ["-H", f"{header}: {value}"]
    response = site.curl(f"https://{DOMAIN}/whoami", *args)
    assert response.status == 200, response.describe()
    echo = response.json()
    assert echo["listener"] == upstream, echo
    lines = echo["header_lines"]
    received = {}
    for name, value in lines:
        received.setdefault(name, []).append(value)
    expected = {"host": DOMAIN, "x-real-ip": site.client_ip, "x-forwarded-for": site.client_ip,
                "x-forwarded-proto": "https", "x-forwarded-host": DOMAIN, "x-forwarded-port": "443"}
    assert {name: received.get(name) for name in expected} == {name: [value] for name, value in expected.items()}, lines
    leaked = [name for name in REMOVED + UNDERSCORED if name.lower() in received]
    assert not leaked, lines
    assert SPOOF not in json.dumps(lines), lines


def test_the_running_configuration_sets_or_clears_each_forwarding_header(host, upstream):
    dump = host.check_output("nginx -T 2>/dev/null")
    for header in REMOVED:
        assert f'proxy_set_header {header} "";' in dump, header
    assert "underscores_in_headers off;" in dump and "ignore_invalid_headers on;" in dump
    server = f"server unix:{upstream};" if upstream.startswith("/") else f"server {upstream};"
    assert server in dump, dump
