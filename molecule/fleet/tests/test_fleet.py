"""Two droplets in [web] and one in [db]: one site.yml run sets up the database on its own host and
converges both web hosts at once, both using it; a rolling deploy.yml keeps the group serving
(clients hammer both hosts through their nginx over HTTPS) while it updates one host at a time.
Testinfra inspects the droplets with `docker exec`; playbooks go over real SSH.
"""
import http.client
import json
import socket
import ssl
import time
import urllib.parse

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
DB = (instances("db") or [{"instance": "", "address": ""}])[0]
DOMAIN = "example.com"     # group_vars/all.yml
USER = "deploy"            # molecule.yml, group web
APP_USER = "gigaflask-app"
APP_ENV = "/srv/gigaflask/shared/env"
PASSWORD_FILE = "/etc/postgresql/gigaflask-gigaflask.password"
# Task names carry the role's FQCN (site.yml and deploy.yml call the roles by it).
DEPLOY_ROLES = ("gigaflask.stack.python_app : ", "gigaflask.stack.gunicorn_supervisor : ")


def droplet_host(name):
    return testinfra.get_host(f"docker://{name}")


def served_version(address):
    """X-App-Version of https://DOMAIN/ at one droplet's address, from the controller."""
    status, _, headers = https_request(address, "GET", "/")
    assert status == 200, status
    return headers.get("X-App-Version")


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


def test_the_first_converge_migrated_the_shared_database_from_one_host_at_a_time():
    # Both hosts ran the release command (the sample app's `flask db upgrade`) against the one
    # database in the same task: at once, alembic's CREATE TABLE fails on one of them.
    spans = {}
    for name in NAMES:
        record = json.loads(droplet_host(name).file("/srv/gigaflask/current/.release-command.json").content_string)
        spans[name] = (record["started"], record["ended"])
    (start_1, end_1), (start_2, end_2) = sorted(spans.values())
    assert end_1 <= start_2, f"the release commands ran at the same time: {spans}"


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


# --- the database on its own host ------------------------------------------------------------------

def database_url(name):
    """The DATABASE_URL in a web host's environment file, parsed."""
    env = droplet_host(name).check_output(f"grep '^DATABASE_URL=' {APP_ENV}")
    return urllib.parse.urlsplit(env.split("=", 1)[1].strip().strip("'\""))


def test_both_web_hosts_use_the_database_on_the_db_host():
    assert DB["instance"], "no droplet in [db]"
    for name in NAMES:
        url = database_url(name)
        # Only host and port in the message: the password stays out of the test output.
        assert (url.hostname, url.port, url.path) == (DB["address"], 5432, "/gigaflask"), (name, url.hostname, url.port)


def test_web_hosts_run_no_postgresql_server():
    for name in NAMES:
        host = droplet_host(name)
        assert host.run("ls /usr/lib/postgresql/*/bin/postgres").rc != 0, f"{name} has a PostgreSQL server"
        assert not host.file("/etc/postgresql").exists, name
        assert ":5432 " not in host.check_output("ss -Hltn"), host.check_output("ss -Hltnp")


def test_postgresql_listens_on_the_address_the_web_hosts_reach_and_loopback_only():
    db = droplet_host(DB["instance"])
    local = {line.split()[3] for line in db.check_output("ss -Hltn 'sport = :5432'").splitlines()}
    # ::1 only where the container has IPv6.
    assert local - {"[::1]:5432"} == {"127.0.0.1:5432", f"{DB['address']}:5432"}, local


def test_pg_hba_and_ufw_admit_exactly_the_web_hosts():
    db = droplet_host(DB["instance"])
    web = {droplet["address"] for droplet in DROPLETS}
    # The rules the server parsed (pg_hba_file_rules reads the file it loads), not the template.
    rules = db.check_output("runuser -u postgres -- psql -Atc "
                            "\"select address, netmask, auth_method from pg_hba_file_rules where type = 'host'\"")
    remote = {tuple(line.split("|")) for line in rules.splitlines()} - {
        ("127.0.0.1", "255.255.255.255", "scram-sha-256"),
        ("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "scram-sha-256")}
    assert remote == {(address, "255.255.255.255", "scram-sha-256") for address in web}, rules
    # "5432/tcp   ALLOW   172.17.0.3   # PostgreSQL from a web host": the source is the last word before '#'.
    ufw = [line for line in db.check_output("ufw status").splitlines() if line.startswith("5432")]
    assert sorted(line.split("#")[0].split()[-1] for line in ufw) == sorted(web), ufw


def app_psql(name, sql):
    """sql as the app user on a web host, with the DATABASE_URL of its environment file and nothing else
    (psql: site.yml gives the web hosts the client when the database has its own host)."""
    return droplet_host(name).run(f"runuser -u {APP_USER} -- sh -c 'set -a; . {APP_ENV}; "
                                  f"psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -Atc \"{sql}\"'")


def test_a_row_written_through_one_web_host_is_read_through_the_other():
    first, second = NAMES
    marker = time.time_ns()   # a number: no quotes to survive two shells
    try:
        wrote = app_psql(first, "create table if not exists fleet_check (mark bigint); "
                                f"insert into fleet_check values ({marker})")
        assert wrote.rc == 0, wrote.stderr
        read = app_psql(second, f"select count(*) from fleet_check where mark = {marker}")
        assert read.rc == 0 and read.stdout.strip() == "1", read.stdout + read.stderr
    finally:
        app_psql(first, "drop table if exists fleet_check")


def https_request(address, method, path, body=None):
    """One request to https://DOMAIN<path> at a droplet's address, with DOMAIN in SNI and Host:
    (status, body, headers)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            conn = http.client.HTTPConnection(DOMAIN)
            conn.sock = tls
            headers = {"Host": DOMAIN, "Connection": "close"}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                body = urllib.parse.urlencode(body)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read(), response.headers


def test_a_note_posted_through_one_web_host_is_read_through_the_other():
    first, second = DROPLETS
    marker = f"fleet-note-{time.time_ns()}"
    status, answer, _ = https_request(first["address"], "POST", "/notes", {"body": marker})
    assert status == 201, (status, answer)
    status, answer, _ = https_request(second["address"], "GET", "/notes")
    assert status == 200, (status, answer)
    assert marker in [note["body"] for note in json.loads(answer)["notes"]], answer


def test_postgresql_is_closed_to_an_address_not_in_web():
    # From the controller (the Docker host): ufw lets no packet to 5432 through.
    try:
        with socket.create_connection((DB["address"], 5432), timeout=5):
            reached = True
    except OSError:
        reached = False
    assert not reached, f"{DB['address']}:5432 accepts connections from the controller"
    # From the database host's own address (ufw admits local traffic): pg_hba.conf refuses the login,
    # with the right password.
    db = droplet_host(DB["instance"])
    login = db.run(f"PGPASSWORD=$(cat {PASSWORD_FILE}) PGCONNECT_TIMEOUT=5 psql -h {DB['address']} -U gigaflask "
                   "-d gigaflask -Atc 'select 1'")
    assert login.rc != 0 and "no pg_hba.conf entry" in login.stderr, login.stdout + login.stderr


# --- status.yml with the database on its own host ----------------------------------------------------

def status_reports(run):
    """Each web host's report lines, by host."""
    for task in run.tasks:
        if task["task"]["name"] == "Report the health of this server":
            return {host: "\n".join(result["msg"]) for host, result in task["hosts"].items()}
    raise AssertionError(run.describe())


def test_status_checks_the_database_host_from_each_web_host(ansible_playbook):
    run = ansible_playbook("playbooks/status.yml", check=True)
    assert_no_changes(run)
    reports = status_reports(run)
    assert sorted(reports) == sorted(NAMES), run.describe()
    for name, report in reports.items():
        assert "FAIL" not in report, report
        # pg_isready over the network from the web host, the login with its DATABASE_URL, and the
        # backup timer read on the database host (it has not fired yet).
        assert f"  ok    postgresql: {DB['address']}:5432 - accepting connections" in report, report
        assert f"  ok    database login: {APP_USER} logs in as gigaflask to gigaflask" in report, report
        assert "  ok    backup: no dump yet; the timer has not fired since it was set up" in report, report


def test_status_fails_on_every_web_host_when_the_database_host_stops(ansible_playbook):
    db = droplet_host(DB["instance"])
    db.run_expect([0], "systemctl stop postgresql")
    try:
        run = ansible_playbook("playbooks/status.yml")
    finally:
        db.run_expect([0], "systemctl start postgresql")
    assert run.rc != 0 and run.changed == 0, run.describe()
    reports = status_reports(run)
    for name in NAMES:
        assert f"  FAIL  postgresql: {DB['address']}:5432 - no response" in reports[name], reports[name]
        assert f"  FAIL  database login: {APP_USER} cannot log in" in reports[name], reports[name]
    assert_no_changes(ansible_playbook("playbooks/status.yml"))
