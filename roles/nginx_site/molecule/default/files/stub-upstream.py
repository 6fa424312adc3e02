#!/usr/bin/python3
"""Stand-in for the app behind nginx: answers every request with JSON describing what it received.

Each request is logged to stdout (the journal of stub-upstream.service) with its Host header, so a
test can tell whether a request reached the app at all.
"""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def answer(self, body_length=0, with_body=True):
        body = json.dumps({
            "stub": "upstream",
            "method": self.command,
            "path": self.path,
            "peer": self.client_address[0],
            "body_length": body_length,
            "headers": {name.lower(): value for name, value in self.headers.items()},
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

    def log_message(self, fmt, *args):
        print(f"request Host={self.headers.get('Host')!r} {fmt % args}", flush=True)


ThreadingHTTPServer(("127.0.0.1", 8000), Echo).serve_forever()
