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
    status_certificate, status_healthz, status_listening, status_nginx_t, status_report, status_service,
    status_supervisor, status_ufw)

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
