"""The collection as its users get it. converge.yml built the tarball, installed it into an empty
collections path and, from the consumer's directory outside this repository, converged the droplet
with `ansible-playbook gigaflask.stack.site`. Here: what the tarball holds, that the consumer's
Ansible finds the installed copy and nothing else, the site through the real path (HTTPS through
nginx, SSH), a playbook of the consumer's own that uses only FQCNs, and ansible-doc on the copy.

Every command that plays the consumer runs with the environment converge.yml recorded
(consumer/environment.json: no ansible.cfg, ANSIBLE_COLLECTIONS_PATH = the installed copy only).
"""
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
from pathlib import Path

import yaml
from cryptography import x509

from conftest import PlaybookRun
from tests.lib.collection import assert_ansible_doc_shows_every_role, assert_tarball_is_the_collection
from tests.lib.droplets import instances
from tests.lib.ssh import ssh

ROOT = Path(__file__).resolve().parents[3]
WORK = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
CONSUMER = WORK / "consumer"
COLLECTIONS = WORK / "collections"
INSTALLED = COLLECTIONS / "ansible_collections" / "gigaflask" / "stack"
DROPLET = (instances("web") or [{}])[0]
ADDRESS = DROPLET.get("address")
KEY = DROPLET.get("identity_file")
GROUP_VARS = (CONSUMER / "group_vars" / "web.yml")
# What the consumer chose in their group_vars (not the repository's example.com and gigaflask).
CHOSEN = yaml.safe_load(GROUP_VARS.read_text()) if GROUP_VARS.exists() else {}
DOMAIN = CHOSEN.get("nginx_site_domain")
USER = CHOSEN.get("users_ssh_user")
def consumer(*cmd, **env):
    """Run a command as the consumer: in their directory, with their environment only."""
    environment = {**json.loads((CONSUMER / "environment.json").read_text()), **env}
    return subprocess.run(cmd, cwd=CONSUMER, env=environment, capture_output=True, text=True,
                          timeout=1800, check=False)


# --- The tarball ---------------------------------------------------------------------------------

def test_the_tarball_holds_the_collection_and_none_of_the_harness():
    tarballs = sorted((WORK / "build").glob("*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    assert_tarball_is_the_collection(tarballs[0], ROOT)


# --- What the consumer's Ansible finds -----------------------------------------------------------

def test_the_consumer_finds_the_installed_copy_and_not_this_repository():
    assert ROOT.resolve() not in CONSUMER.resolve().parents and not (CONSUMER / "ansible.cfg").exists()
    listed = consumer("ansible-galaxy", "collection", "list", "gigaflask.stack", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    found = [Path(path).resolve() for path, collections in json.loads(listed.stdout).items()
             if "gigaflask.stack" in collections]
    assert found == [(COLLECTIONS / "ansible_collections").resolve()], found
    assert ROOT.resolve() not in INSTALLED.resolve().parents and not INSTALLED.is_symlink()


# --- The site gigaflask.stack.site converged, from outside ---------------------------------------

def https_get(path):
    """GET https://DOMAIN<path> at the droplet's address; (status, headers, body, certificate)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # self-signed; the test reads the certificate below
    with socket.create_connection((ADDRESS, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            certificate = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            conn = http.client.HTTPConnection(DOMAIN)
            conn.sock = tls
            conn.request("GET", path, headers={"Host": DOMAIN, "Connection": "close"})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode(), certificate


def test_https_through_nginx_answers_the_app_for_the_consumers_domain():
    version = (INSTALLED / "app" / "VERSION").read_text().strip()
    status, headers, body, certificate = https_get("/")
    assert status == 200 and version in body, (status, headers, body)
    assert headers.get("Server", "").startswith("nginx"), headers
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert DOMAIN in names.get_values_for_type(x509.DNSName), names


def test_root_login_is_refused_and_the_consumers_deploy_user_logs_in():
    root = ssh(ADDRESS, "root", key=KEY)
    assert root.returncode == 255 and "Permission denied (publickey)" in root.stderr, root.stderr
    login = ssh(ADDRESS, USER, "id -un", key=KEY)
    assert login.returncode == 0 and login.stdout.strip() == USER, login.stderr


# --- A playbook of the consumer's own, FQCNs only -------------------------------------------------

def test_a_playbook_of_the_consumers_own_converges_with_the_installed_roles():
    plays = yaml.safe_load((CONSUMER / "playbook.yml").read_text())
    used = [play.get("ansible.builtin.import_playbook") for play in plays if "ansible.builtin.import_playbook" in play]
    used += [role["role"] for play in plays for role in play.get("roles", [])]
    assert used and all(re.fullmatch(r"gigaflask\.stack\.\w+", name) for name in used), used
    run = PlaybookRun.from_process(consumer("ansible-playbook", "playbook.yml", "-i", "inventory",
                                            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                                            ANSIBLE_LOAD_CALLBACK_PLUGINS="1"))
    # The host gigaflask.stack.site converged with the same group_vars: nothing left to change.
    assert run.rc == 0 and run.failed == 0 and run.changed == 0, run.describe()
    paths = {task["task"]["name"]: task["task"]["path"] for task in run.tasks}
    roles = {name.split(" : ")[0] for name in paths if " : " in name}
    assert {f"gigaflask.stack.{role}" for role in ("users_ssh", "hardening_ufw", "tls_selfsigned")} <= roles, roles
    outside = {name: path for name, path in paths.items()
               if not Path(path.rsplit(":", 1)[0]).resolve().is_relative_to(INSTALLED.resolve())
               and not path.startswith(str(CONSUMER / "playbook.yml"))}
    assert outside == {}, outside


# --- ansible-doc on the installed copy ------------------------------------------------------------

def test_ansible_doc_shows_every_role_and_entry_point_of_the_installed_copy():
    # Compared with the repository's spec files: the copy documents every role the source has.
    pages = assert_ansible_doc_shows_every_role(ROOT / "roles", env=json.loads((CONSUMER / "environment.json")
                                                                               .read_text()), cwd=CONSUMER)
    assert {Path(doc["path"]).resolve() for doc in pages.values()} == {INSTALLED.resolve()}, pages
