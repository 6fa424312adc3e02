"""HTTP requests made INSIDE a Testinfra host (its python3, no curl needed), optionally as a user.

    from tests.lib.target_http import get
    answer = get(host, "127.0.0.1:8000", "/healthz")            # {"status", "headers", "body"}
    answer = get(host, "unix:/run/app.sock", "/", user="www-data")

On a connection error `status` is None and `error` says what happened.
"""
import json
import shlex

_CLIENT = r'''
import http.client, json, socket, sys
target, path = sys.argv[1], sys.argv[2]
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(target[5:])
try:
    if target.startswith("unix:"):
        conn = Unix("localhost", timeout=10)
    else:
        host, port = target.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    print(json.dumps({"status": response.status, "headers": dict(response.getheaders()), "body": body}))
except OSError as error:
    print(json.dumps({"status": None, "error": repr(error)}))
'''


def get(host, target, path="/", user=None):
    command = f"python3 -c {shlex.quote(_CLIENT)} {shlex.quote(target)} {shlex.quote(path)}"
    if user:
        command = f"runuser -u {shlex.quote(user)} -- {command}"
    result = host.run(command)
    assert result.rc == 0, f"the HTTP client failed on the host: {result.stderr}"
    return json.loads(result.stdout)
