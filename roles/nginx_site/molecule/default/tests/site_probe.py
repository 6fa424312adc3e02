"""Talk to the nginx_site container from the controller, the way a browser or scanner would.

Every request goes over the network to the container's address with the real name in SNI and Host
(curl --resolve), never through `docker exec`.
"""
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DOMAIN = "gigaflask.test"
NAMES = (DOMAIN, f"www.{DOMAIN}")
SELFSIGNED_CERT = f"/etc/ssl/selfsigned/{DOMAIN}.crt"
SITE_FILE = "/etc/nginx/sites-available/gigaflask"


@dataclass
class Response:
    rc: int
    status: int
    headers: dict
    body: bytes
    stderr: str

    def json(self):
        return json.loads(self.body)

    def describe(self):
        return f"curl rc={self.rc} status={self.status} headers={self.headers}\n{self.body[:500]!r}\n{self.stderr}"


class Site:
    """The converged container seen from outside: its address and what nginx sees as our address."""

    def __init__(self, host):
        self.host = host
        self.ip = host.check_output("hostname -I").split()[0]
        # Requests from the controller reach the container from the Docker bridge's gateway.
        self.client_ip = host.check_output("ip route show default").split()[2]

    def resolve_args(self, names=NAMES):
        args = []
        for name in names:
            for port in (80, 443):
                args += ["--resolve", f"{name}:{port}:{self.ip}"]
        return args

    def curl(self, url, *args, cacert=None, names=NAMES, data=None):
        """One request; returns the status, headers (lower-case names) and body, or curl's error."""
        cmd = ["curl", "--silent", "--show-error", "--max-time", "15", "--dump-header", "-",
               *self.resolve_args(names), *args]
        cmd += ["--cacert", cacert] if cacert else ["--insecure"]
        proc = subprocess.run(cmd + [url], capture_output=True, input=data, check=False)
        head, _, body = proc.stdout.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return Response(proc.returncode, status, headers, body, proc.stderr.decode(errors="replace"))

    def s_client(self, *args, servername=DOMAIN):
        """openssl s_client against port 443; returns (rc, combined output)."""
        cmd = ["openssl", "s_client", "-connect", f"{self.ip}:443"]
        if servername:
            cmd += ["-servername", servername]
        proc = subprocess.run(cmd + list(args), capture_output=True, input=b"", timeout=30, check=False)
        # After the handshake s_client prints whatever the server sends (an HTTP/2 preface is binary).
        return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")

    def renegotiate(self, servername=DOMAIN):
        """A TLS 1.2 connection (1.3 has no renegotiation) on which the client asks to renegotiate
        (s_client's R command); returns (rc, the -msg trace). stdin stays open a moment after the R,
        so s_client sees the server's reply instead of quitting on end of input."""
        cmd = ["openssl", "s_client", "-connect", f"{self.ip}:443", "-servername", servername, "-tls1_2", "-msg"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            time.sleep(2)
            proc.stdin.write(b"R\n")
            proc.stdin.flush()
            time.sleep(3)
        except BrokenPipeError:
            pass  # s_client has already ended: its output says why
        try:
            out, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()
        return proc.returncode, out.decode(errors="replace")

    def served_certificate(self, servername=DOMAIN):
        """The PEM certificate nginx presents for a name."""
        _, out = self.s_client(servername=servername)
        start, end = out.find("-----BEGIN CERTIFICATE-----"), out.find("-----END CERTIFICATE-----")
        assert start >= 0, out
        return out[start:end + len("-----END CERTIFICATE-----")] + "\n"

    def master_pid(self):
        return self.host.check_output("cat /run/nginx.pid")

    def stub_log(self):
        return self.host.check_output("journalctl -u stub-upstream --no-pager -o cat")

    def fetch(self, path, tmp_path):
        """Copy a file from the container to a local path (for --cacert)."""
        local = tmp_path / path.strip("/").replace("/", "_")
        local.write_text(self.host.file(path).content_string)
        return str(local)


def server_blocks(host):
    """Every `server { ... }` block of the running configuration (`nginx -T`), as
    (server_name, [listen arguments]) pairs."""
    dump = host.check_output("nginx -T 2>/dev/null")
    dump = re.sub(r"#[^\n]*", "", dump)
    blocks, depth, start = [], 0, None
    for match in re.finditer(r"\bserver\s*\{|\{|\}", dump):
        token = match.group(0)
        if token != "}" and token.startswith("server") and start is None:
            start, depth = match.end(), 1
        elif start is not None:
            depth += 1 if token == "{" else -1
            if depth == 0:
                body = dump[start:match.start()]
                top = re.sub(r"\{[^{}]*\}", "", body)  # drop nested location blocks
                name = re.search(r"\bserver_name\s+([^;]+);", top)
                listens = re.findall(r"\blisten\s+([^;]+);", top)
                blocks.append((name.group(1).strip() if name else "", listens))
                start = None
    return blocks


def gixy_issues(host, *extra_args):
    """gixy's report on the configuration nginx actually runs (`nginx -T`), as a list of dicts."""
    dump = host.check_output("nginx -T 2>/dev/null")
    gixy = shutil.which("gixy") or Path(sys.executable).with_name("gixy")
    proc = subprocess.run([str(gixy), "--format", "json", *extra_args, "-"], input=dump,
                          capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout or "[]")


def server_names(issue):
    return sorted(re.findall(r"server_name ([^;]+);", issue.get("config", "")))


# Releases whose nginx refuses the TLS handshake for a name the site does not serve
# (ssl_reject_handshake, nginx 1.19.4+): 24.04's 1.24; 20.04 and 22.04 ship 1.18.
REJECTS_HANDSHAKE = {"focal": False, "jammy": False, "noble": True}


def rejects_handshake(host):
    """Whether this release's catch-all refuses the handshake; the table is checked against the
    nginx the release really ships, so a release that gains or lacks the directive is noticed."""
    expected = REJECTS_HANDSHAKE[host.system_info.codename]
    version = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", host.run("nginx -v").stderr)
    assert version, host.run("nginx -v").stderr
    assert expected == (tuple(map(int, version.groups())) >= (1, 19, 4)), version.group(0)
    return expected
