"""Two droplets in [web]: one site.yml run converges both at once, and a rolling deploy.yml keeps
the group serving (clients hammer both hosts through their nginx over HTTPS) while it updates one
host at a time. Testinfra inspects the droplets with `docker exec`; playbooks go over real SSH.
"""
import http.client
import socket
import ssl
import time

import pytest
import testinfra

from conftest import assert_no_changes, assert_rejected_naming
from tests.lib.apps import copy_app
from tests.lib.droplets import docker_hosts, instances
from tests.lib.load import LoadClient
from tests.lib.measure import record

testinfra_hosts = docker_hosts("web")

DROPLETS = instances("web")
NAMES = [droplet["instance"] for droplet in DROPLETS]
DOMAIN = "example.com"     # group_vars/all.yml
USER = "deploy"            # molecule.yml, group web
# Task names carry the role's FQCN (site.yml and deploy.yml call the roles by it).
DEPLOY_ROLES = ("gigaflask.stack.python_app : ", "gigaflask.stack.gunicorn_supervisor : ")


def droplet_host(name):
    return testinfra.get_host(f"docker://{name}")


def served_version(address):
    """X-App-Version of https://DOMAIN/ at one droplet's address, from the controller."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            conn = http.client.HTTPConnection(DOMAIN)
            conn.sock = tls
            conn.request("GET", "/", headers={"Host": DOMAIN, "Connection": "close"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            return response.getheader("X-App-Version")


def test_one_site_run_converged_both_hosts_at_once():
    assert len(NAMES) == 2, DROPLETS
    # When each host's first change (users_ssh: the deploy user's key) and one of its last (nginx's
    # site) happened. One host after the other would not overlap; one run for both does.
    spans = {}
    for name in NAMES:
        host = droplet_host(name)
        first = int(host.check_output(f"stat -c %Y /home/{USER}/.ssh/authorized_keys"))
        last = int(host.check_output("stat -c %Y /etc/nginx/sites-available/gigaflask"))
        spans[name] = (first, last)
    (first_1, last_1), (first_2, last_2) = spans.values()
    assert first_1 < last_2 and first_2 < last_1, f"the hosts converged one after the other: {spans}"
    for droplet in DROPLETS:
        assert served_version(droplet["address"]) is not None


def test_check_mode_on_converged_host_changes_nothing(ansible_playbook):
    assert_no_changes(ansible_playbook("site.yml", check=True, diff=True))


def releases():
    return {name: droplet_host(name).check_output("ls -la --time-style=+%s /srv/gigaflask/releases /srv/gigaflask")
            for name in NAMES}


def test_bad_input_stops_the_rollout_before_any_host_changes(ansible_playbook):
    before = releases()
    run = ansible_playbook("playbooks/deploy.yml", extra_vars={"gunicorn_supervisor_workers": 0})
    assert_rejected_naming(run, "gunicorn_supervisor_workers")
    # max_fail_percentage 0: the first batch failed, so the second never started.
    assert {host for _, host, _ in run.results("failed")} == {NAMES[0]}, run.describe()
    assert releases() == before


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    return copy_app(tmp_path_factory, "fleet-v2", "2.0.0")


def test_rolling_deploy_updates_one_host_at_a_time_and_the_group_never_stops_serving(ansible_playbook, v2):
    loads = [LoadClient(droplet_host(name), f"https://{DOMAIN}@127.0.0.1:443", name=f"fleet-{name}")
             for name in NAMES]
    for load in loads:
        load.start()
    start = time.monotonic()
    try:
        run = ansible_playbook("playbooks/deploy.yml", extra_vars={"python_app_src": str(v2)})
    finally:
        for load in loads:
            load.stop()
    seconds = time.monotonic() - start
    for load in loads:
        record("rolling deploy, load on one host", load.describe())
    record("rolling deploy of 2 hosts (serial 1)", f"{seconds:.0f} s")
    assert run.rc == 0, run.describe()
    for load in loads:
        assert load.stats["failures"] == 0, load.describe()
        assert set(load.stats["versions"]) >= {"2.0.0"}, load.describe()
    for droplet in DROPLETS:
        assert served_version(droplet["address"]) == "2.0.0"
    # The batches: every deploy task ran on one host only, all of the first host's before any of
    # the second's.
    order = []
    for task in run.tasks:
        name = task["task"]["name"]
        if name.startswith(DEPLOY_ROLES) and task["hosts"]:
            assert len(task["hosts"]) == 1, f"{name} ran on {list(task['hosts'])} at once"
            order.append(next(iter(task["hosts"])))
    batches = [h for i, h in enumerate(order) if i == 0 or order[i - 1] != h]
    assert batches == NAMES, f"hosts in task order: {batches}"
