"""The status report's checks (plugins/filter/status.py), on outputs captured from the site
scenario's converged droplets (fixtures/status/: Ubuntu 20.04 and 24.04, the stack as site.yml
leaves it: `supervisorctl status gigaflask:`, `ss -Hltn`, `ufw status verbose`, `nginx -t`, and
`openssl x509 -noout -subject -issuer -enddate` on the certificate nginx served). The broken
variants are those outputs with one thing changed, as the server prints it when that thing breaks.
"""
import datetime
import re
from pathlib import Path

import pytest

from ansible_collections.gigaflask.stack.plugins.filter.status import (
    status_backup, status_certificate, status_database_login, status_database_server, status_healthz,
    status_listening, status_migrations, status_nginx_t, status_report, status_service, status_supervisor,
    status_ufw)

FIXTURES = Path(__file__).parent / "fixtures" / "status"
NOW = datetime.datetime(2026, 12, 2, 14, 0, 0)   # the certificates end on 2 Dec 2027


def out(name, rc=0, stderr=""):
    return {"rc": rc, "stdout": (FIXTURES / name).read_text(), "stderr": stderr}


def test_nginx_t_ok_and_failed():
    ok = status_nginx_t({"rc": 0, "stdout": "", "stderr": (FIXTURES / "nginx-t-ok.txt").read_text()})
    assert ok == {"name": "nginx -t", "ok": True,
                  "detail": "nginx: configuration file /etc/nginx/nginx.conf test is successful"}
    failed = status_nginx_t({"rc": 1, "stdout": "", "stderr": (
        'nginx: [emerg] unknown directive "retrun" in /etc/nginx/sites-enabled/gigaflask.conf:12\n'
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n")})
    assert not failed["ok"] and failed["detail"].endswith("test failed")
    missing = status_nginx_t({"rc": 2, "msg": "[Errno 2] No such file or directory: b'nginx'", "failed": True})
    assert not missing["ok"] and "No such file" in missing["detail"]


def test_services_from_service_facts():
    services = {"nginx.service": {"state": "running"}, "ssh.service": {"state": "stopped"}}
    assert status_service(services, "nginx") == {"name": "nginx", "ok": True, "detail": "running"}
    assert status_service(services, "ssh") == {"name": "ssh", "ok": False, "detail": "stopped"}
    assert status_service({}, "nginx") == {"name": "nginx", "ok": False, "detail": "not installed"}


@pytest.mark.parametrize("fixture", ["supervisor-running.txt", "supervisor-running-noble.txt"])
def test_supervisor_both_slots_running(fixture):
    result = status_supervisor(out(fixture), "gigaflask")
    assert result == {"name": "supervisor program gigaflask", "ok": True,
                      "detail": "gigaflask:gigaflask-0 RUNNING, gigaflask:gigaflask-1 RUNNING"}


def test_supervisor_a_stopped_slot_or_a_missing_program_fails():
    stopped = out("supervisor-running.txt", rc=3)
    stopped["stdout"] = re.sub(r"RUNNING   pid \d+, uptime [0-9:]+", "STOPPED   Dec 02 01:40 PM",
                               stopped["stdout"], count=1)
    result = status_supervisor(stopped, "gigaflask")
    assert not result["ok"] and result["detail"].startswith("gigaflask:gigaflask-0 STOPPED")
    # By its state alone, too: supervisorctl before 4.0 exits 0 whatever the processes' states.
    assert not status_supervisor({**stopped, "rc": 0}, "gigaflask")["ok"]
    one_slot = out("supervisor-running.txt")
    one_slot["stdout"] = one_slot["stdout"].splitlines()[0]
    assert not status_supervisor(one_slot, "gigaflask")["ok"]
    missing = status_supervisor({"rc": 4, "stdout": "nosuch: ERROR (no such group)\n", "stderr": ""}, "nosuch")
    assert not missing["ok"]


def test_ufw_active_with_ssh_http_https():
    result = status_ufw(out("ufw-active.txt"), 22)
    assert result["ok"], result
    assert result["detail"] == ("Status: active; 22/tcp LIMIT IN Anywhere # SSH, 80/tcp ALLOW IN Anywhere # web, "
                                "443/tcp ALLOW IN Anywhere # web")


def test_ufw_inactive_a_closed_port_or_another_ssh_port_fails():
    inactive = {"rc": 0, "stdout": "Status: inactive\n", "stderr": ""}
    assert not status_ufw(inactive, 22)["ok"]
    no_https = out("ufw-active.txt")
    no_https["stdout"] = "\n".join(line for line in no_https["stdout"].splitlines() if not line.startswith("443/"))
    assert not status_ufw(no_https, 22)["ok"]
    assert not status_ufw(out("ufw-active.txt"), 2222)["ok"]


@pytest.mark.parametrize("fixture", ["ss-focal.txt", "ss-noble.txt"])
def test_listening_ssh_http_https_and_the_app(fixture):
    result = status_listening(out(fixture), 22, "127.0.0.1:8000")
    assert result["ok"] and "0.0.0.0:443" in result["detail"], result


def test_nothing_on_80_443_or_the_app_names_what_is_missing():
    nginx_down = out("ss-focal.txt")
    nginx_down["stdout"] = "\n".join(line for line in nginx_down["stdout"].splitlines()
                                     if ":80 " not in line and ":443 " not in line)
    result = status_listening(nginx_down, 22, "127.0.0.1:8000")
    assert not result["ok"] and result["detail"].startswith("nothing listens on 80, 443; "), result
    app_down = status_listening(out("ss-focal.txt"), 22, "127.0.0.1:8001")
    assert app_down["detail"].startswith("nothing listens on 127.0.0.1:8001; ")


def test_a_unix_socket_counts_when_it_is_there():
    assert status_listening(out("ss-noble.txt"), 22, "unix:/run/gigaflask/gunicorn.sock", True)["ok"]
    gone = status_listening(out("ss-noble.txt"), 22, "unix:/run/gigaflask/gunicorn.sock", False)
    assert gone["detail"].startswith("nothing listens on unix:/run/gigaflask/gunicorn.sock; ")


@pytest.mark.parametrize("fixture", ["openssl-selfsigned.txt", "openssl-selfsigned-noble.txt"])
def test_the_self_signed_certificate_with_its_days_left(fixture):
    result = status_certificate(out(fixture), 7, now=NOW)
    assert result == {"name": "certificate", "ok": True,
                      "detail": "CN = example.com, issued by CN = example.com (self-signed), 364 days left"}


def test_a_certificate_about_to_expire_or_none_fails():
    assert not status_certificate(out("openssl-selfsigned.txt"), 7, now=NOW + datetime.timedelta(days=360))["ok"]
    assert status_certificate({}, 7) == {"name": "certificate", "ok": False,
                                         "detail": "no certificate served on port 443"}


URL = "https://example.com/healthz"


def test_healthz_ok_only_with_status_ok():
    ok = {"status": 200, "reason": "OK", "body": '{"status":"ok","version":"1.0.0"}\n',
          "json": {"status": "ok", "version": "1.0.0"}}
    assert status_healthz(ok, URL) == {"name": URL, "ok": True, "detail": '200 {"status":"ok","version":"1.0.0"}'}
    broken = {"status": 500, "reason": "INTERNAL SERVER ERROR", "body": '{"status":"broken"}',
              "json": {"status": "broken"}}
    assert not status_healthz(broken, URL)["ok"]
    bad_gateway = {"status": 502, "reason": "Bad Gateway", "body": "<html>502</html>", "json": None}
    assert status_healthz(bad_gateway, URL) == {"name": URL, "ok": False, "detail": "502 Bad Gateway"}
    refused = {"status": None, "error": "[Errno 111] Connection refused", "json": None}
    assert status_healthz(refused, URL)["detail"] == "[Errno 111] Connection refused"


def test_report_lines():
    checks = [{"name": "nginx", "ok": True, "detail": "running"}, {"name": "ufw", "ok": False, "detail": "x"}]
    assert status_report(checks, "web1", "example.com") == [
        "web1 (example.com): UNHEALTHY", "  ok    nginx: running", "  FAIL  ufw: x"]
    assert status_report(checks[:1], "web1", "example.com")[0] == "web1 (example.com): healthy"


# --- the database (outputs captured on site@focal: pg_isready, the app user's login, the timer) ----

def test_database_server_accepting_and_down():
    ok = status_database_server({"rc": 0, "stdout": "/var/run/postgresql:5432 - accepting connections\n"})
    assert ok == {"name": "postgresql", "ok": True, "detail": "/var/run/postgresql:5432 - accepting connections"}
    down = status_database_server({"rc": 2, "stdout": "/var/run/postgresql:5432 - no response\n"})
    assert not down["ok"] and down["detail"].endswith("no response")
    missing = status_database_server({"rc": 2, "msg": "[Errno 2] No such file or directory: b'pg_isready'"})
    assert not missing["ok"] and "No such file" in missing["detail"]


def test_database_login_as_the_app_user():
    ok = status_database_login({"rc": 0, "stdout": "gigaflask|gigaflask\n", "stderr": ""}, "gigaflask-app")
    assert ok == {"name": "database login", "ok": True, "detail": "gigaflask-app logs in as gigaflask to gigaflask"}
    refused = status_database_login({"rc": 2, "stdout": "", "stderr": (
        'psql: error: FATAL:  password authentication failed for user "gigaflask"\n')}, "gigaflask-app")
    assert not refused["ok"] and refused["detail"].startswith("gigaflask-app cannot log in: psql: error: FATAL")
    no_url = status_database_login({"rc": 1, "stdout": "", "stderr": "no DATABASE_URL in the environment file\n"},
                                   "gigaflask-app")
    assert not no_url["ok"] and no_url["detail"].endswith("no DATABASE_URL in the environment file")


@pytest.mark.parametrize("record, probe, off, ok, detail", [
    ({"stat": {"exists": True}}, {"json": {"status": "ok", "revision": "0002", "head": "0002"}}, False, True,
     "the serving release's release command succeeded; database at 0002, the release's newest 0002"),
    # rolled back: the release before runs on the database its successor expanded
    ({"stat": {"exists": True}}, {"json": {"status": "ok", "revision": "0002", "head": "0001"}}, False, True,
     "the serving release's release command succeeded; database at 0002, the release's newest 0001"),
    ({"stat": {"exists": True}}, {"status": 502, "body": "bad gateway"}, False, True,
     "the serving release's release command succeeded"),
    ({"stat": {"exists": False}}, {"json": {"status": "ok", "revision": None, "head": "0001"}}, False, False,
     "the serving release's release command never succeeded; database at None, the release's newest 0001"),
    ({"stat": {"exists": False}}, {"json": {"status": "ok"}}, True, True, "no release command"),
], ids=["migrated", "rolled-back", "app-down", "never-migrated", "no-command"])
def test_migrations_of_the_serving_release(record, probe, off, ok, detail):
    assert status_migrations(record, probe, off) == {"name": "migrations", "ok": ok, "detail": detail}


TIMER_NEVER = "LastTriggerUSec=\nActiveState=active\n"          # as systemd 245 shows it before the first run
TIMER_FIRED = "LastTriggerUSec=Thu 2026-12-03 03:15:00 UTC\nActiveState=active\n"
BACKUP_NOW = datetime.datetime(2026, 12, 3, 9, 0, 0, tzinfo=datetime.timezone.utc)


def dumps(*hours_old):
    return {"files": [{"path": "/var/backups/postgresql/gigaflask-%d.dump" % i,
                       "mtime": (BACKUP_NOW - datetime.timedelta(hours=h)).timestamp()}
                      for i, h in enumerate(hours_old)]}


@pytest.mark.parametrize("found, timer, enabled, ok, detail", [
    (dumps(30, 5.75), TIMER_FIRED, True, True, "newest gigaflask-1.dump, 5.8 hours old"),
    (dumps(27), TIMER_FIRED, True, False, "newest gigaflask-0.dump, 27.0 hours old (more than 26)"),
    ({"files": []}, TIMER_NEVER, True, True, "no dump yet; the timer has not fired since it was set up"),
    ({"files": []}, TIMER_FIRED, True, False, "no dump in the backup directory (timer active)"),
    (dumps(1), "LastTriggerUSec=\nActiveState=inactive\n", True, False,
     "newest gigaflask-0.dump, 1.0 hours old; the timer is inactive"),
    ({"files": []}, "", False, True, "nightly backups are off (postgresql_backup_enabled)"),
], ids=["recent", "stale", "not-yet", "fired-but-none", "timer-stopped", "off"])
def test_backup_age_and_timer(found, timer, enabled, ok, detail):
    assert status_backup(found, {"stdout": timer}, 26, enabled, now=BACKUP_NOW) == \
        {"name": "backup", "ok": ok, "detail": detail}
