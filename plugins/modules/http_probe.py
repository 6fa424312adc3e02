#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The collection's one health probe: GET a URL on the server itself, as a client would."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: http_probe
short_description: GET a URL from the server itself until it answers as expected
description:
  - The one health probe of the gigaflask collection, used by the gunicorn health gate, the deploy
    report and the status report.
  - Connects over TCP or to a unix socket; for HTTPS it can send a site name in SNI and in the Host
    header while connecting to another address (ansible.builtin.uri cannot), and returns the
    certificate the server showed.
  - Certificates are not verified (a self-signed certificate is normal before Let's Encrypt); the
    caller judges the certificate it gets back.
  - Read-only; it runs in check mode too.
version_added: "1.1.0"
options:
  url:
    description: C(http://) or C(https://) URL; its host names the site (Host header, SNI).
    type: str
    required: true
  address:
    description: Connect to this address instead of the URL's host (the server's own nginx, say).
    type: str
  unix_socket:
    description: Connect to this unix socket instead (plain HTTP only).
    type: path
  status:
    description: Status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  retries:
    description: Further attempts after the first, C(delay) seconds apart, until a healthy answer.
    type: int
    default: 0
  delay:
    description: Seconds between attempts.
    type: float
    default: 1
  timeout:
    description: Seconds for one attempt.
    type: float
    default: 5
  fail_on_unhealthy:
    description: Fail when no attempt was healthy; false only reports (status reports).
    type: bool
    default: true
author: gigaflask engineers
"""

EXAMPLES = r"""
- name: Wait for the canary to answer /healthz on its private socket
  gigaflask.stack.http_probe:
    url: http://localhost/healthz
    unix_socket: /run/gunicorn_supervisor/gigaflask/slot-1.sock
    retries: 20

- name: GET /healthz through nginx with the site's name in SNI and Host
  gigaflask.stack.http_probe:
    url: https://example.com/healthz
    address: 127.0.0.1
    fail_on_unhealthy: false
  register: answer
"""

RETURN = r"""
healthy: {description: Whether the last answer's status is one of C(status)., type: bool, returned: always}
status: {description: HTTP status of the last answer, or null when none came., type: int, returned: always}
reason: {description: HTTP reason phrase., type: str, returned: always}
headers: {description: Response headers (lowercase names)., type: dict, returned: always}
body: {description: The first 64 KiB of the body., type: str, returned: always}
json: {description: The body parsed as JSON, or null., type: raw, returned: always}
certificate: {description: PEM certificate the server showed (https), or null., type: str, returned: always}
error: {description: Why the last attempt got no answer, or null., type: str, returned: always}
attempts: {description: Attempts made., type: int, returned: always}
"""

import json
import socket
import ssl
import time

import http.client as http_client
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

BODY_LIMIT = 65536


class _UnixConnection(http_client.HTTPConnection):
    def __init__(self, path, timeout):
        http_client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class _NamedTLSConnection(http_client.HTTPSConnection):
    """TLS to an address, with the site's name in SNI; keeps the peer certificate."""

    def __init__(self, address, port, server_name, timeout):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        http_client.HTTPSConnection.__init__(self, address, port, timeout=timeout, context=context)
        self.server_name = server_name
        self.certificate = None

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.server_name)
        der = self.sock.getpeercert(binary_form=True)
        self.certificate = ssl.DER_cert_to_PEM_cert(der) if der else None


def connection_for(url, address=None, unix_socket=None, timeout=5.0):
    """The connection a probe of `url` uses, and the request path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be http:// or https:// with a host, got %r" % url)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    if unix_socket:
        if parts.scheme != "http":
            raise ValueError("a unix socket is probed with an http:// url")
        return _UnixConnection(unix_socket, timeout), path
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = address or parts.hostname
    if parts.scheme == "https":
        return _NamedTLSConnection(host, port, parts.hostname, timeout), path
    return http_client.HTTPConnection(host, port, timeout=timeout), path


def probe_once(url, address=None, unix_socket=None, timeout=5.0):
    """One GET; a dict with status (None when no answer came), headers, body, json, certificate, error."""
    result = {"status": None, "reason": "", "headers": {}, "body": "", "json": None,
              "certificate": None, "error": None}
    parts = urlsplit(url)
    conn = None
    try:
        conn, path = connection_for(url, address, unix_socket, timeout)
        host_header = parts.netloc if not unix_socket else (parts.hostname or "localhost")
        conn.request("GET", path, headers={"Host": host_header, "Connection": "close",
                                           "User-Agent": "gigaflask-http-probe"})
        response = conn.getresponse()
        body = response.read(BODY_LIMIT).decode("utf-8", "replace")
        result.update(status=response.status, reason=response.reason, body=body,
                      headers=dict((k.lower(), v) for k, v in response.getheaders()))
        try:
            result["json"] = json.loads(body)
        except ValueError:
            pass
    except (OSError, http_client.HTTPException, ValueError) as error:
        result["error"] = "%s: %s" % (type(error).__name__, error) if str(error) else type(error).__name__
    finally:
        if conn is not None:
            result["certificate"] = getattr(conn, "certificate", None)
            conn.close()
    return result


def probe(url, status=(200,), retries=0, delay=1.0, timeout=5.0, address=None, unix_socket=None,
          sleep=time.sleep):
    """Probe until an answer's status is in `status`, at most 1 + retries times."""
    attempts = 0
    while True:
        attempts += 1
        result = probe_once(url, address, unix_socket, timeout)
        result["healthy"] = result["status"] in status
        result["attempts"] = attempts
        if result["healthy"] or attempts > retries:
            return result
        sleep(delay)


def describe(result, url, unix_socket):
    where = "%s via %s" % (url, unix_socket) if unix_socket else url
    if result["status"] is None:
        return "GET %s: no answer after %d attempt(s) (%s)" % (where, result["attempts"], result["error"])
    return "GET %s answered %s %s after %d attempt(s): %s" % (
        where, result["status"], result["reason"], result["attempts"], result["body"][:300].strip())


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            address=dict(type="str"),
            unix_socket=dict(type="path"),
            status=dict(type="list", elements="int", default=[200]),
            retries=dict(type="int", default=0),
            delay=dict(type="float", default=1.0),
            timeout=dict(type="float", default=5.0),
            fail_on_unhealthy=dict(type="bool", default=True),
        ),
        mutually_exclusive=[("address", "unix_socket")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        connection_for(params["url"], params["address"], params["unix_socket"])
    except ValueError as error:
        module.fail_json(msg=str(error))
    result = probe(params["url"], tuple(params["status"]), max(0, params["retries"]), params["delay"],
                   params["timeout"], params["address"], params["unix_socket"])
    if not result["healthy"] and params["fail_on_unhealthy"]:
        module.fail_json(msg=describe(result, params["url"], params["unix_socket"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
