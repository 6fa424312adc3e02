#!/usr/bin/env python3
"""A request loop that counts failures, run INSIDE a target (stdlib only, Python 3.8+).

    loadclient.py TARGET OUT [INTERVAL] [PATH]

TARGET is host:port, unix:/path.sock, or https://NAME@ADDRESS:PORT (TLS to ADDRESS:PORT with NAME in
SNI and Host, as a browser reaches a site through nginx; the certificate is not verified). Every INTERVAL seconds (default 0.005) it opens a new
connection and sends `GET PATH` (default /). A request fails when the connection is refused or
reset, times out (10 s), or answers anything but 200. Counters, the failures (with time stamps)
and the X-App-Version values seen are written to OUT (JSON) every half second. It stops when
OUT.stop exists, writes OUT a last time and exits.
"""
import http.client
import json
import os
import socket
import ssl
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to an address with another name in SNI (and, from the caller, in Host)."""

    def __init__(self, name, address, port, timeout):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name = name

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.server_name)


def connection(target, timeout=10):
    if target.startswith("https://"):
        name, _, address = target[len("https://"):].partition("@")
        host, port = address.rsplit(":", 1)
        return NamedHTTPSConnection(name, host, int(port), timeout)
    if target.startswith("unix:"):
        return UnixHTTPConnection(target[len("unix:"):], timeout)
    host, port = target.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def main():
    target, out = sys.argv[1], sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.005
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    stats = {"target": target, "requests": 0, "ok": 0, "failures": 0, "errors": [], "versions": {},
             "started": time.time(), "stopped": None}

    def dump():
        with open(out + ".tmp", "w") as handle:
            json.dump(stats, handle)
        os.replace(out + ".tmp", out)

    last_dump = 0.0
    while not os.path.exists(out + ".stop"):
        stats["requests"] += 1
        try:
            conn = connection(target)
            headers = {"Connection": "close"}
            if isinstance(conn, NamedHTTPSConnection):
                headers["Host"] = conn.server_name
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            version = response.getheader("X-App-Version", "none")
            stats["versions"][version] = stats["versions"].get(version, 0) + 1
            if response.status == 200:
                stats["ok"] += 1
            else:
                stats["failures"] += 1
                stats["errors"].append("%.3f HTTP %d" % (time.time(), response.status))
        except (OSError, http.client.HTTPException) as error:
            stats["failures"] += 1
            stats["errors"].append("%.3f %r" % (time.time(), error))
        if time.time() - last_dump > 0.5:
            dump()
            last_dump = time.time()
        time.sleep(interval)
    stats["stopped"] = time.time()
    dump()


if __name__ == "__main__":
    main()
