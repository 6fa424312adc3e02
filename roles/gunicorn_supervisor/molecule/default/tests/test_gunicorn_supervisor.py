"""gunicorn_supervisor serving python_app's releases: settings, crash recovery, graceful updates.

converge.yml runs python_app (sample app, its own user `gigaflask-app`, keep 2 releases) and this role
with its defaults (bind 127.0.0.1:8000). The tests run in file order and later ones build on
earlier ones: read-only checks, check mode and bad input on the converged host first, then the
crash, the updates under load, rollback, broken releases and finally the unix socket bind.
Every test takes the `host` fixture: pytest moves tests without Testinfra's (parametrized,
module-scoped) `host` behind those with it, which would break that order.
"""
import json
import re
import shlex

import pytest

from conftest import ROOT, assert_no_changes
from tests.lib.apps import BROKEN_HEALTHZ, copy_app
from tests.lib.load import LoadClient
from tests.lib.measure import record
from tests.lib.target_http import get

APP_ROOT = "/srv/gigaflask"
PROGRAM = "gigaflask"
USER = "gigaflask-app"     # python_app_user's default: the app's own system user
BIND = "127.0.0.1:8000"
SOCKET = "/run/gigaflask/gunicorn.sock"
SLOTS = f"{APP_ROOT}/shared/gunicorn-slots.json"
RUN_DIR = f"/run/gunicorn_supervisor/{PROGRAM}"  # the launcher's records and private sockets
CRASH_BOUND = 10  # seconds from kill -9 of the master to /healthz answering from a new master
VERSION = (ROOT / "app/VERSION").read_text().strip()


# --- helpers --------------------------------------------------------------------------------------

def serving_slot(host):
    modes = json.loads(host.file(SLOTS).content_string)
    serving = [slot for slot, mode in modes.items() if mode == "serve"]
    assert len(serving) == 1, modes
    return serving[0]


def master_pid(host, slot):
    return int(host.check_output(f"supervisorctl pid {PROGRAM}:{PROGRAM}-{slot}"))


def process_cwd(host, pid):
    # As the process's own user: root in a container lacks CAP_SYS_PTRACE, which /proc/PID/cwd needs.
    return host.check_output(f"runuser -u {USER} -- readlink /proc/{pid}/cwd")


def current_release(host):
    return host.file(f"{APP_ROOT}/current").linked_to


def releases(host):
    return sorted(host.run(f"ls -1 {APP_ROOT}/releases").stdout.split())


def served_version(host, target=BIND):
    answer = get(host, target, "/")
    assert answer["status"] == 200, answer
    return answer["headers"]["X-App-Version"]


def supervisor_log(host, slot, lines=30):
    return host.run(f"tail -n {lines} /var/log/supervisor/{PROGRAM}-{slot}.err.log").stdout


def snapshot(host):
    """What a failed run must leave alone: running masters, current, releases, configs."""
    status = re.sub(r", uptime .*", "", host.run(f"supervisorctl status {PROGRAM}:").stdout)
    return status + host.run(f"readlink {APP_ROOT}/current; ls -1 {APP_ROOT}/releases; "
                             f"sha256sum /etc/supervisor/conf.d/{PROGRAM}.conf /etc/gunicorn/{PROGRAM}.conf.py "
                             f"{APP_ROOT}/shared/env {SLOTS}").stdout


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return {
        # code change only: same requirements
        "code": copy_app(tmp_path_factory, "code", "2.0.0"),
        # a healthy release whose deploy dies after the build
        "interrupted": copy_app(tmp_path_factory, "interrupted", "2.5.0"),
        # a new requirement the app imports: the old venv cannot serve this release
        "requirement": copy_app(
            tmp_path_factory, "requirement", "3.0.0", requirement="six==1.17.0",
            edit=[("import logging\n", "import logging\n\nimport six\n"),
                  ('    response.headers["X-App-Version"] = VERSION\n',
                   '    response.headers["X-App-Version"] = VERSION\n'
                   '    response.headers["X-Six-Version"] = six.__version__\n')]),
        # imports fine, but /healthz answers 500
        "unhealthy": copy_app(
            tmp_path_factory, "unhealthy", "4.0.0-unhealthy",
            edit=BROKEN_HEALTHZ),
        # dies at import: workers never boot
        "crashing": copy_app(
            tmp_path_factory, "crashing", "5.0.0-crashing",
            edit=[("import logging\n", "import logging\nimport module_that_does_not_exist  # noqa: F401\n")]),
    }


def deploy_under_load(host, ansible_playbook, name, playbook="converge.yml", extra_vars=None):
    with LoadClient(host, BIND, name=name) as load:
        run = ansible_playbook(playbook, extra_vars=extra_vars)
    record(name, f"{load.describe()}; play rc={run.rc}")
    return run, load


# --- the converged host ---------------------------------------------------------------------------

def test_app_answers_on_the_bind_address_with_the_deployed_version(host):
    answer = get(host, BIND, "/")
    assert answer["status"] == 200, answer
    assert f"gigaflask {VERSION}" in answer["body"] and answer["headers"]["X-App-Version"] == VERSION
    health = get(host, BIND, "/healthz")
    assert health["status"] == 200 and json.loads(health["body"]) == {"status": "ok", "version": VERSION}


def test_app_runs_as_the_app_user_with_two_workers_per_cpu_plus_one(host):
    master = master_pid(host, serving_slot(host))
    owners = host.check_output(f"ps -o user:32= -p {master} --ppid {master}").split()
    workers = len(owners) - 1
    assert set(owners) == {USER}, owners
    assert workers == 2 * int(host.check_output("nproc")) + 1, f"{workers} workers"
    assert process_cwd(host, master) == current_release(host)


def test_the_state_deploys_trust_is_roots_and_the_app_user_can_forge_none_of_it(host):
    # What serve.yml reads back to decide whether a switch is due: the slot modes, and the record
    # of what each slot's launcher started. Forged, they would make later deploys do nothing.
    records = [f"{RUN_DIR}/slot-{slot}.json" for slot in ("0", "1")]
    for path in [RUN_DIR, SLOTS, *records]:
        state = host.file(path)
        assert state.exists and (state.user, state.group) == ("root", "root"), path
    assert host.file(RUN_DIR).mode == 0o700
    for path in [SLOTS, *records, f"{RUN_DIR}/forged.json"]:
        attempt = host.run(f"runuser -u {USER} -- sh -c {shlex.quote(f'echo {{}} > {path}')}")
        assert attempt.rc != 0, f"the app user wrote {path}"
    assert not host.file(f"{APP_ROOT}/shared/run").exists, "the app-writable records of 1.0.0 are left"
    # Root only until the exec: the parked slot and the serving master both run as the app user.
    for slot in ("0", "1"):
        pid = master_pid(host, slot)
        assert host.check_output(f"ps -o user:32= -p {pid}") == USER, f"slot {slot} runs as root"
        assert json.loads(host.check_output(f"cat {RUN_DIR}/slot-{slot}.json"))["pid"] == pid


def test_app_gets_its_secret_from_the_env_file_and_supervisor_files_hold_none(host):
    env = host.file(f"{APP_ROOT}/shared/env")
    assert (env.user, env.mode) == (USER, 0o600)
    script = f'. {APP_ROOT}/shared/env; printf %s "$SECRET_KEY"'
    secret = host.check_output(f"sh -c {shlex.quote(script)}")
    assert len(secret) >= 32
    environ = host.check_output(f"runuser -u {USER} -- cat /proc/{master_pid(host, serving_slot(host))}/environ "
                                "| tr '\\0' '\\n'")
    assert f"SECRET_KEY={secret}" in environ.splitlines(), "the master did not get SECRET_KEY from the env file"
    for path in (f"/etc/supervisor/conf.d/{PROGRAM}.conf", f"/etc/gunicorn/{PROGRAM}.conf.py", SLOTS):
        assert secret not in host.file(path).content_string, f"the secret is in {path}"
    conf = host.file(f"/etc/supervisor/conf.d/{PROGRAM}.conf")
    assert (conf.user, conf.mode) == ("root", 0o640)
    for path in (f"{APP_ROOT}/shared/env", f"/etc/supervisor/conf.d/{PROGRAM}.conf"):
        assert host.run(f"runuser -u nobody -- cat {path}").rc != 0, f"nobody can read {path}"


# supervisor's own parser reads the live configuration; XML-RPC says supervisord runs exactly that.
SUPERVISOR_CONFIG = r'''
import json, pwd, xmlrpc.client
from supervisor.options import ServerOptions
from supervisor.xmlrpc import SupervisorTransport
options = ServerOptions()
options.realize(args=["-c", "/etc/supervisor/supervisord.conf"])
group = [g for g in options.process_group_configs if g.name == "%(program)s"][0]
procs = group.process_configs
proxy = xmlrpc.client.ServerProxy("http://localhost", transport=SupervisorTransport(None, None, "unix:///var/run/supervisor.sock"))
live = [c for c in proxy.supervisor.getAllConfigInfo() if c["group"] == "%(program)s"]
print(json.dumps({
    "socket": group.socket_config.url,
    "names": sorted(p.name for p in procs),
    "command": procs[0].command,
    "directory": procs[0].directory,
    "user": None if procs[0].uid is None else pwd.getpwuid(procs[0].uid).pw_name,
    "autostart": procs[0].autostart,
    "autorestart": getattr(procs[0].autorestart, "__name__", procs[0].autorestart),
    "stopasgroup": procs[0].stopasgroup,
    "killasgroup": procs[0].killasgroup,
    "stopwaitsecs": procs[0].stopwaitsecs,
    "environment": procs[0].environment,
    "logs": [procs[0].stdout_logfile, procs[0].stdout_logfile_maxbytes, procs[0].stdout_logfile_backups,
             procs[0].stderr_logfile, procs[0].stderr_logfile_maxbytes, procs[0].stderr_logfile_backups],
    "live_commands": sorted(c["command"] for c in live),
    "live_in_use": all(c["inuse"] for c in live),
}))
'''


def test_supervisor_runs_the_program_with_the_tutorial_settings(host):
    config = json.loads(host.check_output(
        f"python3 -c {shlex.quote(SUPERVISOR_CONFIG % {'program': PROGRAM})}"))
    assert config["socket"] == f"tcp://{BIND}"
    assert config["names"] == [f"{PROGRAM}-0", f"{PROGRAM}-1"]
    assert "gunicorn-launch" in config["command"] and "app:app" in config["command"]
    # supervisord starts the launcher as root; the launcher drops to the app user (test below).
    assert (config["directory"], config["user"]) == (APP_ROOT, None)
    assert f" --user {USER} " in config["command"], config["command"]
    assert config["autostart"] is True and config["autorestart"] == "RestartUnconditionally", config
    # TERM to the master only (it stops its workers itself; see the role README), SIGKILL to the group.
    assert config["stopasgroup"] is False and config["killasgroup"] is True, config
    assert config["stopwaitsecs"] == 40, "supervisor must outwait gunicorn's graceful timeout (30 s)"
    assert config["environment"] == {"GUNICORN_SUPERVISOR_SLOT": "0"}, config["environment"]
    assert config["logs"] == [f"/var/log/supervisor/{PROGRAM}-0.out.log", 50 * 1024 * 1024, 10,
                              f"/var/log/supervisor/{PROGRAM}-0.err.log", 50 * 1024 * 1024, 10]
    assert config["live_in_use"] and config["live_commands"] == sorted(
        [config["command"], config["command"].replace("--slot 0", "--slot 1")])


def test_gunicorn_reads_the_configured_settings(host):
    printed = host.run(f"runuser -u {USER} -- sh -c 'cd {APP_ROOT}/current && "
                       f"venv/bin/gunicorn --print-config -c /etc/gunicorn/{PROGRAM}.conf.py app:app'")
    assert printed.rc == 0, printed.stderr
    settings = dict(re.findall(r"^(\w+)\s+= (.*)$", printed.stdout, re.M))
    expected = {"bind": "['127.0.0.1:8000']", "workers": str(2 * int(host.check_output("nproc")) + 1),
                "worker_class": "sync", "timeout": "30", "graceful_timeout": "30", "max_requests": "1000",
                "max_requests_jitter": "100", "forwarded_allow_ips": "['127.0.0.1', '::1']"}
    assert {key: settings.get(key) for key in expected} == expected


def test_check_mode_on_converged_host_changes_nothing(host, ansible_playbook):
    assert_no_changes(ansible_playbook("converge.yml", check=True, diff=True))


@pytest.mark.parametrize("extra_vars, variable", [
    ({"gunicorn_supervisor_workers": 0}, "gunicorn_supervisor_workers"),
    ({"python_app_source": "svn"}, "python_app_source"),
    ({"python_app_source": "git"}, "python_app_repo"),
])
def test_bad_input_fails_before_any_change(host, ansible_playbook, extra_vars, variable):
    before = snapshot(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert run.rc != 0 and run.changed == 0, run.describe()
    assert any(variable in message for message in run.failure_messages), run.describe()
    assert snapshot(host) == before


# --- crash and restart ----------------------------------------------------------------------------

CRASH = r'''
import json, os, signal, socket, subprocess, sys, time
program, slot, private = sys.argv[1], sys.argv[2], sys.argv[3]
name = "%s:%s-%s" % (program, program, slot)
def pid():
    return int(subprocess.run(["supervisorctl", "pid", name], capture_output=True, text=True).stdout.strip() or 0)
def healthy():
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(private)
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        return b" 200 " in s.recv(64).split(b"\r\n")[0]
    except OSError:
        return False
old = pid()
os.kill(old, signal.SIGKILL)
start = time.monotonic()
new = old
while time.monotonic() - start < 60:
    new = pid()
    if new not in (0, old) and healthy():
        break
    time.sleep(0.05)
print(json.dumps({"old": old, "new": new, "seconds": time.monotonic() - start}))
'''


def test_supervisor_brings_a_killed_master_back_within_the_bound(host):
    slot = serving_slot(host)
    private = f"{RUN_DIR}/slot-{slot}.sock"
    with LoadClient(host, BIND, name="crash") as load:
        result = json.loads(host.check_output(
            f"python3 -c {shlex.quote(CRASH)} {PROGRAM} {slot} {private}"))
    record("crash recovery", f"kill -9 master {result['old']} -> new master {result['new']} answering "
                             f"/healthz after {result['seconds']:.2f} s; load: {load.describe()}")
    assert result["new"] not in (0, result["old"]), f"supervisor did not restart the master: {result}"
    assert result["seconds"] < CRASH_BOUND, f"{result} \n{supervisor_log(host, slot)}"
    assert served_version(host) == VERSION
    # The socket stays open (held by supervisord for the parked slot): not one request failed.
    assert load.stats["failures"] == 0, load.describe()


def test_the_current_release_comes_back_when_supervisord_restarts(host):
    # What a reboot does to the program, without the reboot.
    host.run_expect([0], "systemctl restart supervisor")
    slot = serving_slot(host)
    for _ in range(60):
        status = host.run(f"supervisorctl status {PROGRAM}:").stdout
        answer = get(host, BIND, "/healthz")
        if answer["status"] == 200 and status.count("RUNNING") == 2:
            break
        host.run("sleep 0.5")
    assert answer["status"] == 200, f"{answer}\n{status}\n{supervisor_log(host, slot)}"
    assert process_cwd(host, master_pid(host, slot)) == current_release(host)
    idle = "1" if slot == "0" else "0"
    assert host.check_output(f"ps -o args= -p {master_pid(host, idle)}") == "sleep infinity"


# --- updates under load ---------------------------------------------------------------------------

def test_code_change_is_served_without_a_failed_request(host, ansible_playbook, sources):
    before = current_release(host)
    run, load = deploy_under_load(host, ansible_playbook, "update: code change",
                                  extra_vars={"python_app_src": str(sources["code"])})
    assert run.rc == 0, run.describe()
    assert load.stats["failures"] == 0, load.describe()
    assert served_version(host) == "2.0.0"
    assert set(load.stats["versions"]) == {VERSION, "2.0.0"}, load.describe()
    assert current_release(host) != before and len(releases(host)) == 2, releases(host)
    assert process_cwd(host, master_pid(host, serving_slot(host))) == current_release(host)
    # The old master stopped and took all its workers with it.
    assert before not in host.check_output("ps -e -o args="), "a process of the old release is left"


def test_a_run_that_dies_after_the_build_leaves_current_and_what_a_restart_serves(host, ansible_playbook,
                                                                                    sources):
    # python_app builds 2.5.0, then the run dies before gunicorn_supervisor put it in service (here
    # its host check refuses a user that does not exist; an SSH drop or a Ctrl-C stop it alike).
    serving = current_release(host)
    run = ansible_playbook("converge.yml", extra_vars={"python_app_src": str(sources["interrupted"]),
                                                       "gunicorn_supervisor_user": "nosuchuser"})
    assert run.rc != 0 and any("nosuchuser" in m for m in run.failure_messages), run.describe()
    built = [f"{APP_ROOT}/releases/{r}" for r in releases(host)
             if host.file(f"{APP_ROOT}/releases/{r}/VERSION").content_string.strip() == "2.5.0"]
    assert len(built) == 1 and host.file(f"{built[0]}/.release.json").exists, "the run died before the build"
    assert current_release(host) == serving, "an untested release became current"
    assert not host.file(f"{built[0]}/.activated").exists
    # What a reboot does to the program: the release that passed its gate comes back, not the new one.
    host.run_expect([0], "systemctl restart supervisor")
    for _ in range(60):
        answer = get(host, BIND, "/healthz")
        if answer["status"] == 200:
            break
        host.run("sleep 0.5")
    assert served_version(host) == "2.0.0"
    assert process_cwd(host, master_pid(host, serving_slot(host))) == serving


def test_requirement_change_is_served_without_a_failed_request(host, ansible_playbook, sources):
    before = current_release(host)
    run, load = deploy_under_load(host, ansible_playbook, "update: requirement change",
                                  extra_vars={"python_app_src": str(sources["requirement"])})
    assert run.rc == 0, run.describe()
    assert load.stats["failures"] == 0, load.describe()
    answer = get(host, BIND, "/")
    assert answer["headers"]["X-App-Version"] == "3.0.0" and answer["headers"]["X-Six-Version"] == "1.17.0"
    # The release before could never have served this: its venv has no six.
    assert host.run(f"{before}/venv/bin/python -c 'import six'").rc != 0
    assert sorted([current_release(host), before]) == sorted(f"{APP_ROOT}/releases/{r}" for r in releases(host))


def test_rollback_serves_the_previous_release_without_a_failed_request(host, ansible_playbook):
    newest = current_release(host)
    run, load = deploy_under_load(host, ansible_playbook, "rollback", playbook="rollback.yml")
    assert run.rc == 0, run.describe()
    assert load.stats["failures"] == 0, load.describe()
    assert served_version(host) == "2.0.0"
    assert host.file(f"{newest}/.rolled-back").exists
    assert process_cwd(host, master_pid(host, serving_slot(host))) == current_release(host)


@pytest.mark.parametrize("kind, evidence", [
    ("unhealthy", "Status code was 500"),
    ("crashing", "ModuleNotFoundError: No module named 'module_that_does_not_exist'"),
])
def test_broken_release_is_not_served_and_the_play_says_why(host, ansible_playbook, sources, kind, evidence):
    serving = current_release(host)
    run, load = deploy_under_load(host, ansible_playbook, f"broken release: {kind}",
                                  extra_vars={"python_app_src": str(sources[kind]),
                                              # the gate's test: no release command imports it first
                                              "python_app_release_command": [],
                                              "gunicorn_supervisor_health_retries": 3})
    assert run.rc != 0, run.describe()
    message = "\n".join(run.failure_messages)
    assert f"program {PROGRAM}:{PROGRAM}-" in message and "was NOT put in service" in message, message
    assert f"{serving} keeps serving" in message and evidence in message, message
    assert load.stats["failures"] == 0, load.describe()
    assert set(load.stats["versions"]) == {"2.0.0"}, load.describe()
    assert current_release(host) == serving
    assert process_cwd(host, master_pid(host, serving_slot(host))) == serving
    failed = [r for r in releases(host) if host.file(f"{APP_ROOT}/releases/{r}/.failed").exists]
    assert len(failed) == 1, releases(host)


# --- a unix socket for nginx ----------------------------------------------------------------------

def test_unix_socket_admits_www_data_only_and_returns_after_a_reboot(host, ansible_playbook, sources):
    run = ansible_playbook("converge.yml", extra_vars={"python_app_src": str(sources["code"]),
                                                       "gunicorn_supervisor_bind": f"unix:{SOCKET}"})
    assert run.rc == 0, run.describe()
    assert get(host, f"unix:{SOCKET}", "/healthz", user="www-data")["status"] == 200
    denied = get(host, f"unix:{SOCKET}", "/healthz", user="nobody")
    assert denied["status"] is None and "PermissionError" in denied["error"], denied
    assert get(host, BIND, "/")["status"] is None, "the TCP bind still answers"

    # A reboot empties /run: the tmpfiles.d entry recreates the directory before supervisord starts.
    host.run_expect([0], "systemctl stop supervisor && rm -rf /run/gigaflask /run/gunicorn_supervisor && "
                         "systemd-tmpfiles --create /etc/tmpfiles.d/gunicorn-gigaflask.conf && "
                         "systemctl start supervisor")
    directory = host.file("/run/gigaflask")
    assert (directory.user, directory.group, directory.mode) == ("root", "www-data", 0o750)
    for _ in range(60):
        answer = get(host, f"unix:{SOCKET}", "/healthz", user="www-data")
        if answer["status"] == 200:
            break
        host.run("sleep 0.5")
    assert answer["status"] == 200, answer


# --- your own app ---------------------------------------------------------------------------------

# Another app than the sample one: plain WSGI in hello.py, no Flask, no migrations, and no /healthz:
# its health check is /ping.
OWN_APP = '''"""Not the sample app: a WSGI callable named `application` that knows /ping only."""


def application(environ, start_response):
    found = environ.get("PATH_INFO") == "/ping"
    start_response("200 OK" if found else "404 Not Found",
                   [("Content-Type", "text/plain"), ("X-App-Version", "own-1.0")])
    return [b"pong\\n" if found else b"not here\\n"]
'''


def test_your_own_app_deploys_once_told_its_release_command_and_health_path(host, ansible_playbook,
                                                                            tmp_path_factory):
    src = tmp_path_factory.mktemp("own-app")
    (src / "hello.py").write_text(OWN_APP)
    (src / "requirements.txt").write_text("# nothing beyond the standard library\n")
    serving = current_release(host)
    own = {"python_app_src": str(src), "gunicorn_supervisor_bind": f"unix:{SOCKET}",
           "gunicorn_supervisor_wsgi_app": "hello:application", "gunicorn_supervisor_health_retries": 3}

    # The sample app's release command (flask db upgrade) means nothing to it: the run stops there,
    # naming the variable, and nothing switches.
    run = ansible_playbook("converge.yml", extra_vars=own)
    assert run.rc != 0 and "python_app_release_command" in " ".join(run.failure_messages), run.describe()
    assert current_release(host) == serving

    # No release command: now the health gate refuses it (404 at /healthz) and says what to set.
    run = ansible_playbook("converge.yml", extra_vars={**own, "python_app_release_command": []})
    assert run.rc != 0, run.describe()
    message = " ".join(run.failure_messages)
    assert "failed its health gate: GET /healthz" in message and "gunicorn_supervisor_healthz_path" in message, message
    assert current_release(host) == serving

    # Told its health path, it serves.
    run = ansible_playbook("converge.yml", extra_vars={**own, "python_app_release_command": [],
                                                       "gunicorn_supervisor_healthz_path": "/ping"})
    assert run.rc == 0, run.describe()
    assert current_release(host) != serving
    pong = get(host, f"unix:{SOCKET}", "/ping", user="www-data")
    assert (pong["status"], pong["body"], pong["headers"].get("X-App-Version")) == (200, "pong\n", "own-1.0"), pong
    assert get(host, f"unix:{SOCKET}", "/healthz", user="www-data")["status"] == 404
