"""The collection's one health probe (plugins/modules/http_probe.py), against real local servers."""
import datetime
import http.server
import os
import socket
import socketserver
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.gigaflask.stack.plugins.modules import http_probe


class Handler(http.server.BaseHTTPRequestHandler):
    answers = {"/healthz": (200, b'{"status": "ok"}'), "/broken": (500, b"boom")}

    def do_GET(self):  # noqa: N802 (http.server's name)
        status, body = self.answers.get(self.path, (404, b"not here"))
        self.send_response(status)
        self.send_header("X-Seen-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("local", 0)


def serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def tcp_server():
    server = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def unix_server(tmp_path):
    path = str(tmp_path / "app.sock")
    server = serve(UnixServer(path, Handler))
    yield path
    server.shutdown()


@pytest.fixture
def tls_server(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "site.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    seen = []
    context.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serve(server)
    yield server.server_address[1], seen
    server.shutdown()


def test_a_healthy_answer_is_parsed(tcp_server):
    result = http_probe.probe("http://127.0.0.1:%d/healthz" % tcp_server)
    assert result["healthy"] and result["status"] == 200 and result["json"] == {"status": "ok"}
    assert result["attempts"] == 1 and result["error"] is None


def test_an_unhealthy_status_is_retried_then_reported(tcp_server):
    sleeps = []
    result = http_probe.probe("http://127.0.0.1:%d/broken" % tcp_server, retries=2, sleep=sleeps.append)
    assert not result["healthy"] and result["status"] == 500 and result["attempts"] == 3 and len(sleeps) == 2
    assert "answered 500" in http_probe.describe(result, "http://x/broken", None)


def test_no_listener_is_an_error_not_an_exception():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = http_probe.probe("http://127.0.0.1:%d/healthz" % port, sleep=lambda _: None)
    assert result["status"] is None and "ConnectionRefused" in result["error"]
    assert "no answer after 1 attempt" in http_probe.describe(result, "http://x/healthz", None)


def test_a_unix_socket_is_probed_with_the_urls_host_as_host_header(unix_server):
    result = http_probe.probe("http://localhost/healthz", unix_socket=unix_server)
    assert result["healthy"] and result["headers"]["x-seen-host"] == "localhost"


def test_https_sends_the_site_name_in_sni_and_host_and_returns_the_certificate(tls_server):
    port, seen = tls_server
    result = http_probe.probe("https://site.example:%d/healthz" % port, address="127.0.0.1")
    assert result["healthy"] and seen == ["site.example"]
    assert result["headers"]["x-seen-host"] == "site.example:%d" % port
    assert result["certificate"].startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("url", ["ftp://x/", "http:///nohost", "/healthz"])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(ValueError):
        http_probe.connection_for(url)


def test_https_over_a_unix_socket_is_refused():
    with pytest.raises(ValueError):
        http_probe.connection_for("https://x/", unix_socket="/run/x.sock")
