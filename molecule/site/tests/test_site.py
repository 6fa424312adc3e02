"""site.yml end to end on a fresh droplet, seen from OUTSIDE: the controller talks to the droplet's
address over HTTPS, HTTP and SSH as a visitor and the operator would. Testinfra inspects the droplet
with `docker exec` (root cannot log in any more); playbook runs go over real SSH, through
playbooks/connect.yml, exactly as `ansible-playbook site.yml -i inventory` does.

The tests run in file order: read-only checks first, then the runs that change the host
(deploy v2, a broken v3, rollback).
"""
import http.client
import json
import re
import socket
import ssl
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import assert_no_changes, assert_rejected_naming, journal
from tests.lib.apps import BROKEN_HEALTHZ, copy_app
from tests.lib.droplets import docker_hosts, instances
from tests.lib.listeners import connects, listening
from tests.lib.load import LoadClient
from tests.lib.measure import record
from tests.lib.ssh import assert_password_login_is_refused, ssh

testinfra_hosts = docker_hosts("web")

ROOT = Path(__file__).resolve().parents[3]
DROPLET = (instances("web") or [{}])[0]
ADDRESS = DROPLET.get("address")
KEY = DROPLET.get("identity_file")
USER = "deploy"            # molecule.yml, group web: beats group_vars/all.yml's gigaflask
APP_USER = "gigaflask-app"  # python_app_user's default: the app's own user, not the deploy user
DOMAIN = "example.com"     # group_vars/all.yml: gigaflask_domain, not overridden
PROGRAM = "gigaflask"      # python_app_name's default: the supervisor program
VERSION = (ROOT / "app" / "VERSION").read_text().strip()
APP_ROOT = "/srv/gigaflask"  # python_app_root's default
THROUGH_NGINX = f"https://{DOMAIN}@127.0.0.1:443"   # the load client's target inside the droplet


def https(path, *, certificate=None, port=443, form=None):
    """GET https://DOMAIN<path> at the droplet's address, DOMAIN in SNI and Host (POST `form`, a
    dict, when given). With `certificate` (PEM), the server's certificate must verify against it
    for DOMAIN."""
    if certificate:
        context = ssl.create_default_context(cadata=certificate)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((ADDRESS, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            conn = http.client.HTTPConnection(DOMAIN)
            conn.sock = tls
            headers = {"Host": DOMAIN, "Connection": "close"}
            if form is None:
                conn.request("GET", path, headers=headers)
            else:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                conn.request("POST", path, body=urllib.parse.urlencode(form), headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()


def notes():
    """The notes the app reads from PostgreSQL, through nginx over HTTPS."""
    status, _, body = https("/notes")
    assert status == 200, (status, body)
    return [note["body"] for note in json.loads(body)["notes"]]


def health():
    status, _, body = https("/healthz")
    assert status == 200, (status, body)
    return json.loads(body)


def served_version():
    status, headers, body = https("/")
    assert status == 200, (status, body)
    return headers.get("X-App-Version"), body


# --- The site, from outside ----------------------------------------------------------------------

def test_https_through_nginx_reaches_the_app_and_shows_its_version(host):
    certificate = host.file(f"/etc/ssl/selfsigned/{DOMAIN}.crt").content_string
    status, headers, body = https("/", certificate=certificate)
    assert status == 200 and body.strip().endswith(f"gigaflask {VERSION}"), (status, body)
    assert headers.get("X-App-Version") == VERSION, headers
    assert headers.get("Server", "").startswith("nginx"), headers
    status, _, body = https("/healthz", certificate=certificate)
    assert status == 200 and json.loads(body) == {"status": "ok", "version": VERSION, "database": "ok",
                                                  "revision": "0001", "head": "0001"}, body
    status, headers, _ = https("/static/style.css", certificate=certificate)
    assert status == 200 and headers.get("Content-Type", "").startswith("text/css"), headers


def test_app_sees_the_visitor_through_the_forwarded_headers(host):
    gateway = host.check_output("ip -4 route show default").split()[2]   # the controller, seen from the droplet
    status, _, body = https("/whoami")
    seen = json.loads(body)
    assert status == 200, body
    assert seen["host"] == DOMAIN and seen["scheme"] == "https", seen
    assert seen["x_forwarded_proto"] == "https" and seen["x_real_ip"] == gateway, seen
    assert seen["x_forwarded_for"].split(",")[-1].strip() == gateway, seen


def test_http_redirects_permanently_to_https():
    conn = http.client.HTTPConnection(ADDRESS, 80, timeout=10)
    conn.request("GET", "/whoami?q=1", headers={"Host": DOMAIN})
    response = conn.getresponse()
    assert response.status == 301, response.status
    assert response.getheader("Location") == f"https://{DOMAIN}/whoami?q=1"


def test_root_login_is_refused_and_the_deploy_users_key_works():
    root = ssh(ADDRESS, "root", key=KEY)
    assert root.returncode == 255 and "Permission denied (publickey)" in root.stderr, root.stderr
    login = ssh(ADDRESS, USER, "id -un; sudo -n id -u", key=KEY)
    assert login.returncode == 0 and login.stdout.split() == [USER, "0"], login.stderr


def test_password_login_is_refused_even_with_the_right_password(host):
    assert_password_login_is_refused(host, ADDRESS, USER)


def test_from_outside_only_ssh_http_and_https_answer(host):
    public_listener = 8081   # a throwaway listener on every address: only the firewall hides it
    with listening(host, [public_listener]):
        sockets = {int(line.split()[3].rsplit(":", 1)[1]): line.split()[3]
                   for line in host.check_output("ss -Hltn").splitlines()}
        assert sockets.get(8000) == "127.0.0.1:8000", sockets  # gunicorn, behind nginx
        inside = host.run(f"python3 -c \"import socket; socket.create_connection(('{ADDRESS}', {public_listener}), 3)\"")
        assert inside.rc == 0, inside.stderr
        probes = sorted(set(sockets) | {public_listener, 8000})
        with ThreadPoolExecutor(len(probes)) as pool:
            answered = {port for port, ok in zip(probes, pool.map(lambda port: connects(ADDRESS, port), probes)) if ok}
    assert answered == {22, 80, 443}, f"answering from outside: {sorted(answered)}; listening: {sockets}"


def test_group_vars_reach_the_host_unless_web_overrides_them(host):
    # gigaflask_domain from group_vars/all.yml reaches nginx (and the certificate) ...
    names = re.findall(r"^\s*server_name\s+([^;]+);", host.check_output("nginx -T 2>/dev/null"), re.M)
    assert f"{DOMAIN} www.{DOMAIN}" in [" ".join(n.split()) for n in names], names
    # ... while users_ssh_user set on group web beats group_vars/all.yml's gigaflask.
    assert host.user(USER).exists and not host.user("gigaflask").exists


def test_the_app_runs_as_its_own_user_that_cannot_become_root_or_change_its_code(host):
    # gunicorn's master and workers: the app user's, not the deploy user's (who has sudo).
    owners = set(host.check_output("ps -o user:32= -C gunicorn").split())
    assert owners == {APP_USER}, host.check_output("ps -eo user,args")
    app = host.user(APP_USER)
    assert app.shell == "/usr/sbin/nologin" and app.uid < 1000, (app.shell, app.uid)
    assert not {"sudo", "admin"} & set(app.groups), app.groups
    assert host.run(f"runuser -u {APP_USER} -- sudo -n true").rc != 0
    assert not host.file(f"{app.home}/.ssh/authorized_keys").exists
    # Code, venv, gunicorn's config and the release pointer are root's: the app cannot change them.
    for path in (f"{APP_ROOT}/current/app.py", f"{APP_ROOT}/current/venv/bin/gunicorn",
                 f"{APP_ROOT}/current/venv/lib", f"{APP_ROOT}/releases", "/etc/gunicorn"):
        assert host.run(f"runuser -u {APP_USER} -- test -w {path}").rc != 0, f"{APP_USER} can write {path}"
    # The environment file is the app's alone (secrets), and so readable by it.
    env = host.file(f"{APP_ROOT}/shared/env")
    assert (env.user, env.mode) == (APP_USER, 0o600)


def database_answer(host):
    """What the app user gets from the database with its environment file and nothing else."""
    return host.run(f"runuser -u {APP_USER} -- sh -c 'set -a; . {APP_ROOT}/shared/env; "
                    "psql \"$DATABASE_URL\" -Atc \"select current_user, current_database()\"'")


def test_the_app_reaches_its_database_with_the_url_in_its_environment(host):
    # PostgreSQL answers on loopback only (the test above finds nothing but 22, 80, 443 from outside).
    answer = database_answer(host)
    assert answer.rc == 0 and answer.stdout.strip() == "gigaflask|gigaflask", answer.stdout + answer.stderr
    password = host.file("/etc/postgresql/gigaflask-gigaflask.password")
    assert (password.user, password.mode) == ("root", 0o600)
    assert host.run(f"runuser -u {APP_USER} -- cat {password.path}").rc != 0


def test_the_app_keeps_notes_in_postgresql_written_and_read_over_https(host):
    status, _, body = https("/notes", form={"body": "written before any deploy"})
    assert status == 201, (status, body)
    assert "written before any deploy" in notes()
    # In the database itself, in the table the release command's migration created.
    rows = host.run("runuser -u postgres -- psql -d gigaflask -Atc 'select body from notes'")
    assert rows.rc == 0 and "written before any deploy" in rows.stdout.splitlines(), rows.stdout + rows.stderr
    assert health() == {"status": "ok", "version": VERSION, "database": "ok", "revision": "0001", "head": "0001"}


# --- site.yml again ------------------------------------------------------------------------------

def test_check_mode_on_converged_host_changes_nothing(ansible_playbook):
    assert_no_changes(ansible_playbook("site.yml", check=True, diff=True))


def test_tags_nginx_runs_only_nginx_work(ansible_playbook):
    run = ansible_playbook("site.yml", tags="nginx")
    assert_no_changes(run)
    actions = {}   # role (or '-' outside roles) -> {action: [task names]}
    for task in run.tasks:
        name = task["task"]["name"]
        role = name.split(" : ", 1)[0].removeprefix("gigaflask.stack.") if " : " in name else "-"
        # The shared package step (the internal `common` role) is the work of the role that named
        # the packages: nginx_site's is the one that installs nginx.
        if role == "common" and "nginx" in name:
            role = "nginx_site"
        for result in task["hosts"].values():
            actions.setdefault(role, {}).setdefault(result.get("action"), []).append(name)
    # nginx_site did its whole job: packages, configuration, the service.
    assert {"ansible.builtin.apt", "ansible.builtin.template", "ansible.builtin.service"} <= set(
        actions.get("nginx_site", {})), actions.get("nginx_site")
    # Every other role contributes only its read-only input checks (the roles tag them `always`),
    # outside roles only the login (connect.yml), the facts and the certbot-nginx agreement check.
    read_only = {"ansible.builtin.validate_argument_spec", "ansible.builtin.assert", "ansible.builtin.getent",
                 "ansible.builtin.setup", "ansible.builtin.debug", "ansible.builtin.find"}
    work = {role: {action: names for action, names in by_action.items() if action not in read_only}
            for role, by_action in actions.items() if role not in ("nginx_site", "-")}
    assert {role: found for role, found in work.items() if found} == {}, work
    outside = sorted(name for names in actions.get("-", {}).values() for name in names)
    assert outside == sorted([
        "Try to log in as the deploy user (a fresh server refuses it; root is used then)",
        "Use the deploy user if it got in, else the inventory's user", "Log in as the chosen user",
        "Report the user this run logs in as", "Gathering Facts",
        "Check that nginx serves the certificate certbot obtains"]), outside


@pytest.mark.parametrize("extra_vars, variable", [
    ({"nginx_site_domain": "not a domain!"}, "nginx_site_domain"),
    ({"gunicorn_supervisor_workers": 0}, "gunicorn_supervisor_workers"),
    ({"certbot_email": "not-an-address"}, "certbot_email"),
])
def test_bad_input_fails_before_anything_changes(host, ansible_playbook, extra_vars, variable):
    # Plus a good change hardening_ufw (early in site.yml) would make: on this converged host it
    # shows whether the bad input stopped the run before the first role, not just before its own.
    # (A literal address: playbooks/validate.yml judges input on the controller, before any fact.)
    pending = {"hardening_ufw_fail2ban_ignore_ips": [
        "{{ lookup('ansible.builtin.file', molecule_ephemeral_directory ~ '/controller_address') }}", "203.0.113.7"]}
    host.run_expect([0], "touch /tmp/gf-before-bad-input")
    run = ansible_playbook("site.yml", extra_vars={**pending, **extra_vars})
    assert_rejected_naming(run, variable)
    changed = host.check_output(
        "find /etc/nginx /etc/ssh /etc/supervisor /etc/ufw /etc/fail2ban /etc/ssl /etc/sudoers.d /srv /home "
        "-newer /tmp/gf-before-bad-input -not -path '*/.ansible/*' -not -path '*/.cache/*'")
    assert changed == "", changed


# --- status.yml ----------------------------------------------------------------------------------

def status_report(run):
    for task in run.tasks:
        if task["task"]["name"] == "Report the health of this server":
            return "\n".join(next(iter(task["hosts"].values()))["msg"])
    return run.describe()


def test_status_passes_on_the_healthy_host_and_changes_nothing(ansible_playbook):
    run = ansible_playbook("playbooks/status.yml", check=True)
    assert_no_changes(run)
    report = status_report(run)
    assert "healthy" in report.splitlines()[0] and "FAIL" not in report, report
    for check in ("nginx -t", "nginx", f"supervisor program {PROGRAM}", "ssh", "ufw", "listening",
                  "certificate", f"https://{DOMAIN}/healthz", "postgresql", "database login", "migrations", "backup"):
        assert f"  ok    {check}: " in report, report
    assert f"database login: {APP_USER} logs in as gigaflask to gigaflask" in report, report
    # pytest runs this test (no `host`) after the deploys: 1.0.0 serves again, on v2's schema.
    assert "migrations: the serving release's release command succeeded; database at 0002, the release's newest 0001" \
        in report, report
    assert re.search(r"certificate: CN ?= ?example\.com, issued by CN ?= ?example\.com \(self-signed\), 3\d\d days",
                     report), report


@pytest.mark.parametrize("stop, start, failing", [
    ("systemctl stop nginx", "systemctl start nginx", ["nginx: stopped", "listening: nothing listens on 80, 443",
                                                       f"https://{DOMAIN}/healthz"]),
    (f"supervisorctl stop {PROGRAM}:", f"supervisorctl start {PROGRAM}:",
     [f"supervisor program {PROGRAM}: {PROGRAM}:{PROGRAM}-0 STOPPED", "listening: nothing listens on 127.0.0.1:8000",
      f"https://{DOMAIN}/healthz: 502"]),
    ("systemctl stop postgresql", "systemctl start postgresql",
     ["postgresql: /var/run/postgresql:5432 - no response", f"database login: {APP_USER} cannot log in",
      f"https://{DOMAIN}/healthz: 503"]),
], ids=["nginx-stopped", "app-stopped", "database-stopped"])
def test_status_fails_naming_what_is_wrong(host, ansible_playbook, stop, start, failing):
    host.run_expect([0], stop)
    try:
        run = ansible_playbook("playbooks/status.yml")
    finally:
        host.run_expect([0], start)
    assert run.rc != 0 and run.changed == 0, run.describe()
    message = " ".join(run.failure_messages)
    assert "is unhealthy" in message, run.describe()
    for text in failing:
        assert text in message, message
    # Healthy again once restored.
    assert_no_changes(ansible_playbook("playbooks/status.yml"))


# --- deploy.yml and rollback.yml -----------------------------------------------------------------

# v2's migration expands the schema the way a release running beside the previous one must: one
# nullable column the previous release does not know about.
EXPAND = """
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.add_column("notes", sa.Column("author", sa.String(length=100), nullable=True))


def downgrade():
    op.drop_column("notes", "author")
"""
# A migration that fails halfway: its first statement ran, its second fails. One transaction: the
# database keeps 0002, and none of it.
BROKEN = """
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.add_column("notes", sa.Column("topic", sa.String(length=100), nullable=True))
    op.execute("UPDATE notes SET no_such_column = 1")


def downgrade():
    op.drop_column("notes", "topic")
"""


def with_migrations(src, **migrations):
    for name, code in migrations.items():
        (src / "migrations" / "versions" / f"{name}.py").write_text(code)
    return src


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return {
        "v2": with_migrations(copy_app(tmp_path_factory, "v2", "2.0.0"), m0002_author=EXPAND),
        # imports fine, but /healthz answers 500: the health gate must keep it out of service
        "v3": with_migrations(copy_app(tmp_path_factory, "v3", "3.0.0-broken",
                                       edit=BROKEN_HEALTHZ),
                              m0002_author=EXPAND),
        # a healthy app whose release command (its migration) fails
        "v4": with_migrations(copy_app(tmp_path_factory, "v4", "4.0.0-migration-fails"),
                              m0002_author=EXPAND, m0003_broken=BROKEN),
    }


def test_deploy_v2_under_load_through_nginx_fails_no_request(host, ansible_playbook, sources):
    with LoadClient(host, THROUGH_NGINX, name="site-deploy-v2") as load:
        run = ansible_playbook("playbooks/deploy.yml", extra_vars={"python_app_src": str(sources["v2"])})
    record("deploy v2 under load through nginx", load.describe())
    assert run.rc == 0, run.describe()
    assert load.stats["failures"] == 0, load.describe()
    assert set(load.stats["versions"]) == {VERSION, "2.0.0"}, load.describe()
    assert served_version()[0] == "2.0.0"
    # The release command migrated the database before v2 took traffic; the notes are still there.
    assert (health()["revision"], health()["head"]) == ("0002", "0002")
    assert "written before any deploy" in notes()
    https("/notes", form={"body": "written under v2"})


def test_site_after_a_deploy_stops_rather_than_switch_back_to_the_app_group_vars_name(host, ansible_playbook,
                                                                                    sources):
    # group_vars name the sample app 1.0.0; v2 came from deploy.yml -e. site.yml must not quietly
    # put 1.0.0 back: it stops, says what it would replace with what, and how to confirm.
    before = host.check_output(f"readlink {APP_ROOT}/current")
    run = ansible_playbook("site.yml")
    assert run.rc != 0, run.describe()
    message = " ".join(run.failure_messages)
    assert "would replace the release that serves" in message and str(sources["v2"]) in message, message
    assert "playbooks/deploy.yml" in message and "gigaflask_replace_app=true" in message, message
    assert run.changed == 0, run.describe()
    assert host.check_output(f"readlink {APP_ROOT}/current") == before
    assert served_version()[0] == "2.0.0"


def test_deploy_of_an_unhealthy_v3_fails_clearly_and_v2_keeps_serving(host, ansible_playbook, sources):
    with LoadClient(host, THROUGH_NGINX, name="site-deploy-v3") as load:
        run = ansible_playbook("playbooks/deploy.yml", extra_vars={"python_app_src": str(sources["v3"])})
    record("broken v3 under load through nginx", load.describe())
    assert run.rc != 0, run.describe()
    message = " ".join(run.failure_messages)
    assert "deploy stopped at" in message and "keeps serving version 2.0.0" in message, message
    assert "rolled back by itself" in message, message
    assert load.stats["failures"] == 0, load.describe()
    assert set(load.stats["versions"]) == {"2.0.0"}, load.describe()
    assert served_version()[0] == "2.0.0", journal(host, "supervisor")


def test_rollback_returns_to_the_release_before(host, ansible_playbook):
    with LoadClient(host, THROUGH_NGINX, name="site-rollback") as load:
        run = ansible_playbook("playbooks/rollback.yml")
    record("rollback under load through nginx", load.describe())
    assert run.rc == 0, run.describe()
    assert load.stats["failures"] == 0, load.describe()
    assert served_version()[0] == VERSION
    assert f"serves version {VERSION}" in run.output, run.describe()


def test_the_database_url_and_the_data_survive_deploys_and_the_rollback(host):
    # deploy.yml wrote the environment file again for v2 (and v3); it still names the database.
    answer = database_answer(host)
    assert answer.rc == 0 and answer.stdout.strip() == "gigaflask|gigaflask", answer.stdout + answer.stderr
    # Back on 1.0.0, whose schema is 0001: it reads and writes beside v2's expanded schema.
    assert health()["revision"] == "0002" and health()["head"] == "0001"
    assert {"written before any deploy", "written under v2"} <= set(notes())
    status, _, body = https("/notes", form={"body": "written after the rollback"})
    assert status == 201, (status, body)


def test_a_deploy_whose_migration_fails_stops_and_the_release_before_keeps_serving(host, ansible_playbook,
                                                                                   sources):
    with LoadClient(host, THROUGH_NGINX, name="site-deploy-v4") as load:
        run = ansible_playbook("playbooks/deploy.yml", extra_vars={"python_app_src": str(sources["v4"])})
    record("failing migration v4 under load through nginx", load.describe())
    assert run.rc != 0, run.describe()
    message = " ".join(run.failure_messages)
    assert "deploy stopped at" in message and f"keeps serving version {VERSION}" in message, message
    assert "python_app_release_command" in message and "no_such_column" in message, message
    assert load.stats["failures"] == 0, load.describe()
    assert set(load.stats["versions"]) == {VERSION}, load.describe()
    assert served_version()[0] == VERSION
    # The migration ran in one transaction: its first statement is undone, the schema is 0002's.
    assert health()["revision"] == "0002"
    columns = host.run("runuser -u postgres -- psql -d gigaflask -Atc "
                       "\"select column_name from information_schema.columns where table_name = 'notes'\"")
    assert "topic" not in columns.stdout.split() and "author" in columns.stdout.split(), columns.stdout
    assert "written after the rollback" in notes()


def test_backup_playbook_dumps_the_database_and_fetches_it_over_ssh(host, ansible_playbook, tmp_path):
    # The operator's path: playbooks/backup.yml through connect.yml over real SSH, the dump fetched.
    assert host.service("gigaflask-pg-backup.timer").is_enabled
    run = ansible_playbook("playbooks/backup.yml", extra_vars={"gigaflask_backup_fetch_dir": str(tmp_path)})
    assert run.rc == 0, run.describe()
    dumps = host.check_output("ls /var/backups/postgresql").split()
    assert dumps and all(d.startswith("gigaflask-") and d.endswith(".dump") for d in dumps), dumps
    fetched = list(tmp_path.rglob("*.dump"))
    assert [f.name for f in fetched] == [sorted(dumps)[-1]], (fetched, dumps)
    assert fetched[0].read_bytes().startswith(b"PGDMP"), "not a pg_dump custom-format archive"


def test_restore_playbook_brings_back_the_notes_lost_after_the_backup(host, ansible_playbook):
    # The backup above holds every note written so far. Then the data is lost (the table dropped,
    # as a bad hand-typed statement would), the site fails, and restore.yml over SSH brings it back.
    before = set(notes())
    assert {"written before any deploy", "written after the rollback"} <= before, before
    dump = sorted(host.check_output("ls /var/backups/postgresql").split())[-1]
    host.run_expect([0], "runuser -u postgres -- psql -d gigaflask -c 'DROP TABLE notes'")
    assert https("/notes")[0] == 500
    run = ansible_playbook("playbooks/restore.yml", extra_vars={"gigaflask_restore_dump": dump})
    assert run.rc == 0, run.describe()
    assert set(notes()) == before
