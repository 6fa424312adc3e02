#!/usr/bin/python3
"""Stand-in for the app behind nginx: answers every request with JSON describing what it received.

Each request is logged to stdout (the journal of the stub's unit) with its Host header, so a test
can tell whether a request reached the app at all.

    stub-upstream                      listen on 127.0.0.1:8000 (gunicorn's TCP bind)
    stub-upstream /run/dir/stub.sock   listen on a unix socket (gunicorn's unix: bind)
"""
import json
import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTENER = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"


class Echo(BaseHTTPRequestHandler):
    def answer(self, body_length=0, with_body=True):
        body = json.dumps({
            "stub": "upstream",
            "method": self.command,
            "path": self.path,
            "listener": LISTENER,
            # A unix socket's peer has no address.
            "peer": self.client_address[0] if self.client_address else "",
            "body_length": body_length,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            # Every header line as received, repeats included.
            "header_lines": [[name.lower(), value] for name, value in self.headers.items()],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.answer()

    def do_HEAD(self):  # noqa: N802
        self.answer(with_body=False)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.answer(length)

    def address_string(self):
        return self.client_address[0] if self.client_address else "unix"

    def log_message(self, fmt, *args):
        print(f"request Host={self.headers.get('Host')!r} {fmt % args}", flush=True)


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if LISTENER.startswith("/"):
    if os.path.exists(LISTENER):
        os.unlink(LISTENER)
    UnixServer(LISTENER, Echo).serve_forever()
else:
    ThreadingHTTPServer(("127.0.0.1", 8000), Echo).serve_forever()
