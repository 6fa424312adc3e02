"""The apt cache of the test harness (tools/apt-cache) binds only where it must and is no open proxy.

It listens on localhost and the Docker bridge's address only; from a test container, the
distribution archives come through it while any other host, port or HTTPS tunnel is refused.
Skipped where the harness runs no cache (not root, no Docker engine): `make test` starts both first.
"""
import ipaddress
import json
import os
import subprocess

import pytest

from tests.lib.listeners import connects

PORT = os.environ.get("GF_APT_PROXY_PORT", "3142")
IMAGE = f"gigaflask/{os.environ.get('MOLECULE_DISTRO', 'ubuntu2004')}:base"

# Runs inside the container (Python 3.8 on Ubuntu 20.04): each request through the proxy at
# argv[1]:argv[2], answered with the proxy's status line.
PROBE = r'''
import json, socket, sys
proxy = (sys.argv[1], int(sys.argv[2]))

def status(request):
    with socket.create_connection(proxy, timeout=30) as s:
        s.sendall(request.encode())
        return s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")

answers = {}
for target in sys.argv[3:]:
    if target.startswith("CONNECT "):
        answers[target] = status("%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target.split()[1]))
    else:
        answers[target] = status("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                 % (target, target.split("/")[2]))
print(json.dumps(answers))
'''

ARCHIVES = [
    "http://archive.ubuntu.com/ubuntu/dists/focal/Release",
    "http://security.ubuntu.com/ubuntu/dists/focal-security/Release",
    "http://deb.debian.org/debian/dists/bookworm/Release",
    "http://security.debian.org/debian-security/dists/bookworm-security/Release",
]
REFUSED = [
    "http://example.com/",
    "http://pypi.org/simple/",
    "http://deb.debian.org/",                                         # the archive's host, not the archive
    "http://deb.debian.org.example.com/debian/dists/bookworm/Release",  # a look-alike host
    "http://archive.ubuntu.com/ubuntu/../index.html",
    "http://archive.ubuntu.com:8080/ubuntu/dists/focal/Release",     # another port
]


def run(*cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120, **kwargs)


def bridge_address():
    name = run("docker", "network", "inspect", "bridge", "-f",
               '{{index .Options "com.docker.network.bridge.name"}}').stdout.strip() or "docker0"
    for line in run("ip", "-4", "-o", "addr", "show", "dev", name).stdout.splitlines():
        return line.split()[3].split("/")[0]
    return None


@pytest.fixture(scope="module")
def bridge():
    if PORT == "none":
        pytest.skip("GF_APT_PROXY_PORT=none: the harness runs no apt cache")
    if run("docker", "info").returncode != 0:
        pytest.skip("no Docker engine answers")
    if not connects("127.0.0.1", int(PORT)):
        pytest.skip(f"no apt cache on port {PORT} (tools/apt-cache starts it as root)")
    address = bridge_address()
    assert address, "the Docker bridge has no IPv4 address"
    return address


def test_the_cache_listens_on_localhost_and_the_bridge_only(bridge):
    listening = {line.split()[3] for line in run("ss", "-Hltn", f"sport = :{PORT}").stdout.splitlines()}
    assert listening == {f"127.0.0.1:{PORT}", f"{bridge}:{PORT}"}, listening


def test_the_hosts_other_addresses_refuse_the_port(bridge):
    others = []
    for line in run("ip", "-o", "addr", "show").stdout.splitlines():
        address = ipaddress.ip_address(line.split()[3].split("/")[0])
        if not (address.is_loopback or address.is_link_local or str(address) == bridge):
            others.append(str(address))
    if not others:
        pytest.skip("this host has no address but loopback and the bridge")
    assert [a for a in others if connects(a, int(PORT))] == [], f"port {PORT} answers on other addresses"


def test_a_container_gets_the_archives_through_the_cache_and_nothing_else(bridge):
    if run("docker", "image", "inspect", IMAGE).returncode != 0:
        pytest.skip(f"{IMAGE} is not built (molecule/images/build)")
    tunnels = ["CONNECT deb.debian.org:443", "CONNECT pypi.org:443", "CONNECT example.com:443",
               "CONNECT deb.debian.org:22"]
    proc = run("docker", "run", "--rm", "-i", "--entrypoint", "python3", IMAGE, "-", bridge, PORT,
               *ARCHIVES, *REFUSED, *tunnels, input=PROBE)
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)
    status = {target: answer.split()[1] for target, answer in answers.items()}
    assert {t: status[t] for t in ARCHIVES} == {t: "200" for t in ARCHIVES}, answers
    assert status["CONNECT deb.debian.org:443"] == "200", answers
    refused = REFUSED + tunnels[1:]
    assert {t: status[t] for t in refused} == {t: "403" for t in refused}, answers
