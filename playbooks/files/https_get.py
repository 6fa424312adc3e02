#!/usr/bin/env python3
"""GET https://NAME<PATH> through this server's own nginx, as a browser would ask for it.

    https_get.py NAME PATH [ADDRESS [PORT]]

Connects to ADDRESS:PORT (default 127.0.0.1:443) with NAME in SNI and in the Host header, so nginx
picks the site (and certificate) it shows the world; ansible.builtin.uri cannot send a name other
than the address it connects to. The certificate is not verified here (a self-signed one is
normal before Let's Encrypt); it is returned as PEM for the caller to inspect. Prints one JSON
object: url, status, reason, headers, body, certificate (PEM), or error. Python 3.8 standard library only.
"""
import http.client
import json
import socket
import ssl
import sys


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to an address, with another name in SNI."""

    def __init__(self, address, port, server_name, context, timeout=10):
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name = server_name
        self.certificate = None

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.server_name)
        der = self.sock.getpeercert(binary_form=True)
        self.certificate = ssl.DER_cert_to_PEM_cert(der) if der else None


def main():
    name, path = sys.argv[1], sys.argv[2]
    address = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    port = int(sys.argv[4]) if len(sys.argv) > 4 else 443
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = NamedHTTPSConnection(address, port, name, context)
    result = {"url": "https://%s%s" % (name, path), "status": None}
    try:
        conn.request("GET", path, headers={"Host": name, "Connection": "close"})
        response = conn.getresponse()
        result.update(status=response.status, reason=response.reason, headers=dict(response.getheaders()),
                      body=response.read(4096).decode("utf-8", "replace"))
    except (OSError, http.client.HTTPException) as error:
        result["error"] = str(error) or type(error).__name__
    finally:
        result["certificate"] = conn.certificate
        conn.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
