"""python_app alone: what a release is, who may read what, and how releases come and go.

The converge (converge.yml) deploys the sample app as the dedicated system user `gfapp` with
python_app_keep_releases: 2. The tests run in file order: read-only checks first, then check
mode and bad input on the converged host, then deploys of other sources, rollback and git.
Every test takes the `host` fixture: pytest moves tests without Testinfra's (parametrized,
module-scoped) `host` behind those with it, which would break that order.
"""
import hashlib
import io
import json
import shlex
import tarfile

import pytest

from conftest import ROOT, assert_no_changes, assert_rejected_naming
from tests.lib.apps import copy_app

APP_ROOT = "/srv/gigaflask"
APP_USER = "gfapp"
BUILD_USER = "gigaflask-build"  # python_app_build_user's default
GREETING = "Hi 'there', $HOME \"quoted\" & more"  # converge.yml's APP_GREETING


def current_release(host):
    return host.file(f"{APP_ROOT}/current").linked_to


def releases(host):
    return sorted(host.run(f"ls -1 {APP_ROOT}/releases").stdout.split())


def release_json(host, release):
    return json.loads(host.file(f"{release}/.release.json").content_string)


def as_app_user(host, script):
    """Run a shell script as the app user with the app's environment, in the current release."""
    inner = f"set -a; . {APP_ROOT}/shared/env; set +a; cd {APP_ROOT}/current && {script}"
    return host.run(f"runuser -u {APP_USER} -- sh -c {shlex.quote(inner)}")


def env_value(host, name):
    script = f'set -a; . {APP_ROOT}/shared/env; printf %s "${name}"'
    result = host.run(f"sh -c {shlex.quote(script)}")
    assert result.rc == 0, result.stderr
    return result.stdout


def snapshot(host):
    """What a failed run must leave alone."""
    return host.run(f"cd {APP_ROOT} && readlink current && ls -1 releases && "
                    "sha256sum shared/env shared/secret_key").stdout


# --- the converged host ---------------------------------------------------------------------------

def test_current_is_a_complete_release_of_the_sample_app(host):
    release = current_release(host)
    assert release.startswith(f"{APP_ROOT}/releases/"), release
    meta = release_json(host, release)
    assert meta["id"] == release.rsplit("/", 1)[1] and meta["source"] == "local", meta
    for name in ("app.py", "VERSION", "requirements.txt", "static/style.css"):
        local = hashlib.sha256((ROOT / "app" / name).read_bytes()).hexdigest()
        assert host.file(f"{release}/{name}").sha256sum == local, f"{name} differs from app/{name}"


def test_release_venv_serves_the_app_with_its_requirements_and_pinned_gunicorn(host):
    result = as_app_user(host, "venv/bin/python -c 'from app import app; "
                               "r = app.test_client().get(\"/healthz\"); print(r.status_code, r.get_json()[\"version\"])'")
    assert result.rc == 0, result.stderr
    assert result.stdout.split() == ["200", (ROOT / "app/VERSION").read_text().strip()]
    assert as_app_user(host, "venv/bin/gunicorn --version").stdout.split()[-1].strip("()") == "23.0.0"
    freeze = as_app_user(host, "venv/bin/pip freeze").stdout.lower().splitlines()
    assert "flask==3.0.3" in freeze, freeze


def test_app_user_is_an_unprivileged_system_user_who_cannot_change_the_code(host):
    user = host.user(APP_USER)
    assert 0 < user.uid < 1000 and user.shell == "/usr/sbin/nologin", (user.uid, user.shell)
    for user in (APP_USER, BUILD_USER):
        write = host.run(f"runuser -u {user} -- touch {APP_ROOT}/current/app.py {APP_ROOT}/current/venv/bin/x")
        assert write.rc != 0, f"{user} can change the code or the venv"
    assert host.run(f"find {APP_ROOT}/current/ ! -user root").stdout == "", "part of the release is not root's"
    log = host.run(f"runuser -u {APP_USER} -- touch {APP_ROOT}/shared/log/probe && rm {APP_ROOT}/shared/log/probe")
    assert log.rc == 0, f"the app user cannot write its log directory: {log.stderr}"


def test_env_file_is_readable_by_the_app_user_only(host):
    env = host.file(f"{APP_ROOT}/shared/env")
    assert (env.user, env.group, env.mode) == (APP_USER, APP_USER, 0o600)
    assert host.run(f"runuser -u nobody -- cat {APP_ROOT}/shared/env").rc != 0, "nobody can read the env file"
    assert as_app_user(host, "true").rc == 0


def test_env_file_values_survive_shell_quoting(host):
    assert env_value(host, "APP_GREETING") == GREETING


def test_generated_secret_key_is_in_the_env_file(host):
    secret = env_value(host, "SECRET_KEY")
    assert len(secret) == 64 and secret.isalnum(), "SECRET_KEY was not generated"
    assert host.file(f"{APP_ROOT}/shared/secret_key").content_string.strip() == secret
    kept = host.file(f"{APP_ROOT}/shared/secret_key")
    assert (kept.user, kept.group, kept.mode) == ("root", "root", 0o600)


def test_check_mode_on_converged_host_changes_nothing(host, ansible_playbook):
    assert_no_changes(ansible_playbook("converge.yml", check=True, diff=True))


@pytest.mark.parametrize("extra_vars, variable", [
    ({"python_app_source": "svn"}, "python_app_source"),
    ({"python_app_source": "git"}, "python_app_repo"),
    ({"python_app_keep_releases": 1}, "python_app_keep_releases"),
    ({"python_app_env": {"NOT VALID": "x"}}, "python_app_env"),
])
def test_bad_input_fails_before_any_change(host, ansible_playbook, extra_vars, variable):
    before = snapshot(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert_rejected_naming(run, variable)
    assert snapshot(host) == before


# --- other sources --------------------------------------------------------------------------------

def test_new_sources_become_new_releases_and_only_n_are_kept(host, ansible_playbook, tmp_path_factory):
    secret = env_value(host, "SECRET_KEY")
    first = current_release(host)
    built = []
    for version in ("2.0.0", "3.0.0"):
        src = copy_app(tmp_path_factory, f"app-{version}", version)
        run = ansible_playbook("converge.yml", extra_vars={"python_app_src": str(src)})
        assert run.rc == 0, run.describe()
        built.append(current_release(host))
        assert host.file(f"{built[-1]}/VERSION").content_string.strip() == version
    assert len(set(built + [first])) == 3, "a new source did not make a new release"
    assert releases(host) == sorted(path.rsplit("/", 1)[1] for path in built), "not exactly the 2 newest kept"
    assert env_value(host, "SECRET_KEY") == secret, "the generated SECRET_KEY changed"


def test_same_content_from_another_directory_is_not_a_new_release(host, ansible_playbook, tmp_path_factory):
    release = current_release(host)
    src = copy_app(tmp_path_factory, "app-3.0.0-again", "3.0.0")
    for path in src.rglob("*"):
        path.touch()  # other file times, same content
    run = ansible_playbook("converge.yml", extra_vars={"python_app_src": str(src)})
    assert_no_changes(run)
    assert current_release(host) == release


def test_rollback_makes_the_previous_release_current(host, ansible_playbook):
    newest = current_release(host)
    previous = [path for path in releases(host) if not newest.endswith(path)]
    run = ansible_playbook("rollback.yml")
    assert run.rc == 0, run.describe()
    assert current_release(host) == f"{APP_ROOT}/releases/{previous[0]}"
    assert host.file(f"{newest}/.rolled-back").exists

    # Nothing older is left (keep 2): a second rollback says so and changes nothing.
    again = ansible_playbook("rollback.yml")
    assert again.rc != 0 and again.changed == 0, again.describe()
    assert any("no earlier release to roll back to" in message for message in again.failure_messages), \
        again.describe()


def test_git_source_deploys_the_tagged_commit(host, ansible_playbook):
    setup = host.run(
        "set -e; rm -rf /srv/git /tmp/gf-work; git init -q --bare /srv/git/app.git; "
        f"mkdir /tmp/gf-work; cd {APP_ROOT}/current; "
        "cp -r app.py manage.py VERSION requirements.txt static migrations /tmp/gf-work; "
        "cd /tmp/gf-work; "
        "echo 7.0.0 > VERSION; git init -q; git add -A; "
        "git -c user.name=t -c user.email=t@example.com commit -qm v7; git tag v7.0.0; "
        "echo 7.1.0 > VERSION; git -c user.name=t -c user.email=t@example.com commit -qam v7.1; "
        "git push -q /srv/git/app.git HEAD:refs/heads/main --tags; git rev-parse v7.0.0")
    assert setup.rc == 0, setup.stderr
    tagged = setup.stdout.strip()
    run = ansible_playbook("converge.yml", extra_vars={"python_app_source": "git",
                                                       "python_app_repo": "file:///srv/git/app.git",
                                                       "python_app_version": "v7.0.0"})
    assert run.rc == 0, run.describe()
    release = current_release(host)
    assert release_json(host, release)["commit"] == tagged
    assert host.file(f"{release}/VERSION").content_string.strip() == "7.0.0"
    assert not host.file(f"{release}/.git").exists
    result = as_app_user(host, "venv/bin/python -c 'from app import VERSION; print(VERSION)'")
    assert result.stdout.strip() == "7.0.0", result.stderr


# The setup.py of an sdist: pip runs it at every build. It tries what a malicious dependency would
# (as root every one of these succeeds) and reports each outcome to a file the build user may write.
HOSTILE_SETUP = """
import glob, json, os, pwd
from setuptools import setup

def attempt(action, path):
    try:
        action(path)
        return "written"
    except OSError as error:
        return "denied: " + error.strerror

touch = lambda path: open(path, "a").close()
writes = {path: attempt(touch, path) for path in
          ["/etc/gigaflask-hostile", "/root/gigaflask-hostile", "%(root)s/shared/env",
           "%(root)s/shared/secret_key"] + glob.glob("%(root)s/releases/*/app.py")}
writes["%(root)s/releases/planted"] = attempt(os.mkdir, "%(root)s/releases/planted")
with open("/tmp/gigaflask-hostile-report.json", "w") as report:
    json.dump({"user": pwd.getpwuid(os.getuid()).pw_name, "writes": writes}, report)
setup(name="hostile-probe", version="1.0", py_modules=[])
""" % {"root": APP_ROOT}


def hostile_sdist(directory):
    """hostile-probe-1.0.tar.gz in `directory`: an sdist whose setup.py is HOSTILE_SETUP."""
    files = {"setup.py": HOSTILE_SETUP,
             "PKG-INFO": "Metadata-Version: 1.0\nName: hostile-probe\nVersion: 1.0\n"}
    with tarfile.open(directory / "hostile-probe-1.0.tar.gz", "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"hostile-probe-1.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_a_requirement_that_runs_code_at_install_cannot_write_outside_its_venv(host, ansible_playbook,
                                                                                tmp_path_factory):
    src = copy_app(tmp_path_factory, "hostile", "8.0.0", requirement="./hostile-probe-1.0.tar.gz")
    hostile_sdist(src)
    host.run("rm -f /tmp/gigaflask-hostile-report.json")
    secrets = host.run(f"sha256sum {APP_ROOT}/shared/env {APP_ROOT}/shared/secret_key").stdout
    run = ansible_playbook("converge.yml", extra_vars={"python_app_src": str(src)})
    assert run.rc == 0, run.describe()
    report = host.file("/tmp/gigaflask-hostile-report.json")
    assert report.exists, "the sdist's setup.py never ran: the test proves nothing"
    report = json.loads(report.content_string)
    assert report["user"] == BUILD_USER, f"the build ran the sdist's code as {report['user']}"
    assert len(report["writes"]) >= 6, report  # the targets above and at least two releases' code
    written = {path: outcome for path, outcome in report["writes"].items() if not outcome.startswith("denied")}
    assert written == {}, f"the sdist's code wrote outside its venv: {written}"
    for path in ("/etc/gigaflask-hostile", "/root/gigaflask-hostile", f"{APP_ROOT}/releases/planted"):
        assert not host.file(path).exists, path
    assert host.run(f"sha256sum {APP_ROOT}/shared/env {APP_ROOT}/shared/secret_key").stdout == secrets
    # The release was built with it, and its venv is root's now: read-only for the build and the app.
    release = current_release(host)
    assert host.file(f"{release}/VERSION").content_string.strip() == "8.0.0"
    assert "hostile-probe" in as_app_user(host, "venv/bin/pip freeze").stdout.lower()
    assert host.run(f"find {release}/venv ! -user root").stdout == "", "the build user still owns part of the venv"
    assert host.run(f"pgrep -u {BUILD_USER}").rc == 1, "a process of the build outlived it"


# --- the release command --------------------------------------------------------------------------

# What the probe command writes: who ran it, where, with which environment, and whether it could
# write into its own release (it must not: the code is root's). One line: an argument holds no
# control character.
RELEASE_PROBE = (
    "import json, os, pwd; json.dump({'user': pwd.getpwuid(os.getuid()).pw_name, 'cwd': os.getcwd(), "
    "'path': os.environ.get('PATH'), 'greeting': os.environ.get('APP_GREETING'), "
    "'ansible': sorted(k for k in os.environ if k.startswith('ANSIBLE')), "
    "'release_writable': os.access(os.getcwd(), os.W_OK)}, open('/tmp/gigaflask-release-command.json', 'w'))"
)


def test_the_default_release_command_migrated_the_sample_app(host):
    # The converge ran the sample app's `flask db upgrade` (no DATABASE_URL here: an in-memory
    # database) and recorded it in the release, root's.
    record = host.file(f"{current_release(host)}/.release-command.json")
    assert record.exists and record.user == "root" and record.mode == 0o644
    assert json.loads(record.content_string)["command"] == ["flask", "--app", "manage", "db", "upgrade"]


def test_the_release_command_runs_once_per_release_as_the_app_user_before_it_is_current(
        host, ansible_playbook, tmp_path_factory):
    src = copy_app(tmp_path_factory, "app-9.0.0", "9.0.0")
    command = {"python_app_src": str(src), "python_app_release_command": ["python", "-c", RELEASE_PROBE]}
    host.run("rm -f /tmp/gigaflask-release-command.json")
    run = ansible_playbook("converge.yml", extra_vars=command)
    assert run.rc == 0, run.describe()
    release = current_release(host)
    assert host.file(f"{release}/VERSION").content_string.strip() == "9.0.0"
    probe = host.file("/tmp/gigaflask-release-command.json")
    assert probe.exists, "the release command never ran"
    probe = json.loads(probe.content_string)
    assert probe["user"] == APP_USER and probe["cwd"] == release, probe
    assert probe["path"].startswith(f"{release}/venv/bin:"), probe
    assert probe["greeting"] == GREETING and probe["ansible"] == [], probe
    assert probe["release_writable"] is False, f"the release command may write into its release: {probe}"
    # Once per release: the same release again runs nothing and changes nothing.
    host.run("rm -f /tmp/gigaflask-release-command.json")
    assert_no_changes(ansible_playbook("converge.yml", extra_vars=command))
    assert not host.file("/tmp/gigaflask-release-command.json").exists, "the release command ran twice"


def test_a_failing_release_command_stops_the_run_and_nothing_switches(host, ansible_playbook, tmp_path_factory):
    before = current_release(host)
    src = copy_app(tmp_path_factory, "app-10.0.0", "10.0.0")
    failing = ["python", "-c", "import sys; print('migration 0002 failed: column exists'); sys.exit(3)"]
    run = ansible_playbook("converge.yml", extra_vars={"python_app_src": str(src),
                                                       "python_app_release_command": failing})
    assert run.rc != 0, run.describe()
    message = " ".join(run.failure_messages)
    assert "python_app_release_command" in message and "exit code 3" in message, message
    assert "migration 0002 failed: column exists" in message, message
    assert current_release(host) == before, "current moved to a release whose release command failed"
    built = [path for path in releases(host) if not before.endswith(path)]
    failed = [path for path in built
              if host.file(f"{APP_ROOT}/releases/{path}/VERSION").content_string.strip() == "10.0.0"]
    assert failed and not host.file(f"{APP_ROOT}/releases/{failed[0]}/.release-command.json").exists
