"""Throwaway TCP listeners inside a target, for proving what the firewall lets through."""
import socket
from contextlib import contextmanager


@contextmanager
def listening(host, ports):
    """Listen on 0.0.0.0:<port> for every port (a transient systemd unit each) until the block ends.

    Waits until each port is really in LISTEN state, so a refused connection afterwards means the
    firewall refused it, not that the listener was late.
    """
    for port in ports:
        host.run_expect([0], f"systemd-run --unit=gf-listen-{port} python3 -m http.server {port} --bind 0.0.0.0")
    try:
        for port in ports:
            host.run_expect([0], f"timeout 10 sh -c 'until ss -Hltn sport = :{port} | grep -q LISTEN; do sleep 0.2; done'")
        yield list(ports)
    finally:
        for port in ports:
            host.run(f"systemctl stop gf-listen-{port}")


def connects(address, port, timeout=3):
    """Whether a TCP connection to address:port is accepted (from where the test runs)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
