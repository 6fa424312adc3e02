"""Run tests/lib/loadclient.py inside a Testinfra host while something happens, and read its count.

    from tests.lib.load import LoadClient

    with LoadClient(host, "127.0.0.1:8000") as load:
        run = ansible_playbook("converge.yml", extra_vars=...)
    assert load.stats["failures"] == 0, load.describe()

TARGET: host:port, unix:/path.sock, or https://NAME@ADDRESS:PORT (through nginx, NAME in SNI and Host).
"""
import base64
import re
import json
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("loadclient.py")
REMOTE_SCRIPT = "/usr/local/bin/gf-loadclient"


class LoadClient:
    """A background request loop on the target; `stats` holds its final count after the block."""

    def __init__(self, host, target, name="load", interval=0.005, path="/", warmup=1.0):
        self.host = host
        self.target = target
        self.out = "/tmp/gf-load-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".json"
        self.interval = interval
        self.path = path
        self.warmup = warmup
        self.stats = None

    def _install(self):
        encoded = base64.b64encode(SCRIPT.read_bytes()).decode()
        self.host.run_expect([0], f"echo {encoded} | base64 -d > {REMOTE_SCRIPT} && chmod 0755 {REMOTE_SCRIPT}")

    def start(self):
        self._install()
        self.host.run_expect([0], f"rm -f {self.out} {self.out}.stop {self.out}.tmp")
        self.host.run_expect([0], f"setsid nohup python3 {REMOTE_SCRIPT} {self.target} {self.out} "
                                  f"{self.interval} {self.path} >/dev/null 2>&1 < /dev/null &")
        deadline = time.monotonic() + 30
        while self.read() is None or self.read()["requests"] == 0:
            assert time.monotonic() < deadline, "the load client did not start"
            time.sleep(0.2)
        time.sleep(self.warmup)
        return self

    def read(self):
        result = self.host.run(f"cat {self.out}")
        return json.loads(result.stdout) if result.rc == 0 and result.stdout.strip() else None

    def stop(self):
        self.host.run_expect([0], f"touch {self.out}.stop")
        deadline = time.monotonic() + 30
        while True:
            stats = self.read()
            if stats and stats.get("stopped"):
                self.stats = stats
                return stats
            assert time.monotonic() < deadline, "the load client did not stop"
            time.sleep(0.2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def describe(self):
        stats = self.stats or {}
        seconds = (stats.get("stopped") or 0) - (stats.get("started") or 0)
        return (f"{stats.get('requests')} requests to {self.target} in {seconds:.0f} s: "
                f"{stats.get('ok')} ok, {stats.get('failures')} failed; versions seen {stats.get('versions')}; "
                f"first failures: {stats.get('errors', [])[:10]}")
