"""Helpers of the certbot scenario's tests: the Pebble container, TLS as a client outside the
target sees it, and certbot runs with the renewal service's own environment."""
import os
import re
import subprocess
import tempfile
import time

import pytest
import testinfra
from cryptography import x509

NAMES = ["gigaflask.test", "www.gigaflask.test"]
EXTRA = "api.gigaflask.test"
LIVE = "/etc/letsencrypt/live/gigaflask.test"
RENEWAL_CONF = "/etc/letsencrypt/renewal/gigaflask.test.conf"
INSTANCE = os.environ.get("GF_INSTANCE") or "instance"
PEBBLE = f"gf-{INSTANCE}-pebble"
DIRECTORY = f"https://{PEBBLE}:14000/dir"


@pytest.fixture(scope="module")
def pebble(request):
    """The Pebble container (group `acme` of the scenario's inventory)."""
    return testinfra.get_hosts(["acme"], connection="ansible",
                               ansible_inventory=request.config.option.ansible_inventory)[0]


@pytest.fixture(scope="module")
def target_ip(host):
    addresses = [a for a in host.interface("eth0").addresses if "." in a]
    assert addresses, host.run("ip -4 addr").stdout
    return addresses[0]


@pytest.fixture(scope="module")
def pebble_root(pebble):
    """This Pebble run's root CA (it makes a new one at every start), as a file on the controller."""
    pem = pebble.check_output("curl -sS --fail --cacert /etc/pebble/ca.pem https://localhost:15000/roots/0")
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(pem + "\n")
    yield handle.name
    os.unlink(handle.name)


class Served:
    """What nginx on the target presents for one name, as a client outside the target sees it."""

    def __init__(self, ip, name, root):
        proc = subprocess.run(
            ["openssl", "s_client", "-connect", f"{ip}:443", "-servername", name, "-CAfile", root,
             "-verify_hostname", name, "-showcerts"],
            input="", capture_output=True, text=True, timeout=30, check=False)
        self.output = proc.stdout + proc.stderr
        match = re.search(r"Verify return code: (\d+) \(([^)]*)\)", self.output)
        self.verify = (int(match.group(1)), match.group(2)) if match else (None, "no handshake")
        pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", self.output, re.S)
        self.chain = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
        self.leaf = self.chain[0] if self.chain else None

    @property
    def names(self):
        ext = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return sorted(ext.value.get_values_for_type(x509.DNSName))

    @property
    def serial(self):
        return self.leaf.serial_number


def served(ip, name, root):
    return Served(ip, name, root)


def served_once_reloaded(ip, name, root, old_serial, seconds=10):
    """What nginx presents once a reload has taken effect: `nginx -s reload` (systemd's reload)
    returns when the master has the signal, before its new workers answer, so a handshake at once
    can still meet an old worker. Gives up after `seconds` and returns what it saw last."""
    for _ in range(seconds * 2):
        seen = Served(ip, name, root)
        if seen.serial != old_serial:
            return seen
        time.sleep(0.5)
    return seen


def file_serial(host):
    out = host.check_output(f"openssl x509 -in {LIVE}/cert.pem -noout -serial")
    return int(out.split("=", 1)[1], 16)


def certbot(host, args, attempts=3):
    """certbot with the renewal service's own environment (so with its CA bundle), retried on
    badNonce only: Pebble rejects 5 % of nonces and the protocol says to retry."""
    env = host.check_output("systemctl show -p Environment --value certbot.service")
    for _ in range(attempts):
        result = host.run(f"env {env} certbot {args} --no-random-sleep-on-renew")
        if result.rc == 0 or not re.search(r"badNonce|anti-replay nonce", result.stdout + result.stderr):
            break
    return result


def nginx_main_pid(host):
    return host.check_output("systemctl show -p MainPID --value nginx")


def certbot_log(host):
    return host.run("tail -n 60 /var/log/letsencrypt/letsencrypt.log").stdout


def certbot_state(host):
    """What the role may change: /etc/letsencrypt, units, link, virtualenv, the webroot, packages."""
    return host.check_output(
        "find /etc/letsencrypt /etc/systemd/system /usr/local/bin /opt /var/www -maxdepth 3 "
        "\\( -path '/etc/systemd/system/*' -a -not -name 'certbot*' \\) -prune -o "
        "-printf '%p %l %s %T@\\n' | sort; sha256sum /var/lib/dpkg/status /etc/letsencrypt/renewal/*.conf")
