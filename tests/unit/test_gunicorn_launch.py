"""The gunicorn_supervisor launcher (roles/gunicorn_supervisor/files/gunicorn-launch): its reading of
the state file, its choice of release, the env file, the root-only run directory, and a whole start
as supervisord does it (as root, then dropping to an unprivileged user), with a stand-in gunicorn
that reports who, where and with which sockets it was started.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, load_script

LAUNCHER = ROOT / "roles/gunicorn_supervisor/files/gunicorn-launch"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the launcher starts as root, as under supervisord")


launch = load_script(LAUNCHER, "gunicorn_launch")


@pytest.fixture
def app_root():
    """An app root anyone may traverse (the app user must reach its release): /tmp/..., 0755."""
    root = Path(tempfile.mkdtemp(prefix="gf-launch-"))
    root.chmod(0o755)
    for name in ("aaa", "bbb"):
        bin_dir = root / "releases" / name / "venv" / "bin"
        bin_dir.mkdir(parents=True)
        gunicorn = bin_dir / "gunicorn"
        gunicorn.write_text('#!/bin/sh\nprintf "%s|%s|%s|%s|%s|%s\\n" "$(id -un)" "$PWD" "$LISTEN_FDS" '
                            '"$GUNICORN_SUPERVISOR_MODE" "$APP_GREETING" "$*"\n')
        gunicorn.chmod(0o755)
    for path in [root / "releases", *(root / "releases").iterdir(), *(root / "releases").glob("*/venv"),
                 *(root / "releases").glob("*/venv/bin")]:
        path.chmod(0o755)
    (root / "current").symlink_to(root / "releases" / "aaa")
    (root / "shared").mkdir(mode=0o755)
    (root / "shared" / "env").write_text("# the app's environment\nAPP_GREETING='hello there'\n")
    yield root
    shutil.rmtree(root)


def write_state(root, state):
    path = root / "shared" / "gunicorn-slots.json"
    path.write_text(state if isinstance(state, str) else json.dumps(state))
    return path


@pytest.mark.parametrize("state, expected", [
    (None, [("serve", None), ("park", None)]),
    ("not json", [("serve", None), ("park", None)]),
    ('["serve"]', [("serve", None), ("park", None)]),
    ({"0": "park", "1": "serve", "releases": {"1": "/srv/x/releases/bbb"}},
     [("park", None), ("serve", "/srv/x/releases/bbb")]),
    ({"0": "reboot", "1": "canary", "releases": {"0": 7, "1": ""}}, [("serve", None), ("canary", None)]),
], ids=["missing", "garbage", "list", "pinned", "bad-values"])
def test_the_state_file_gives_each_slot_a_mode_and_maybe_a_release(app_root, state, expected):
    path = app_root / "shared" / "gunicorn-slots.json" if state is None else write_state(app_root, state)
    assert [launch.slot_state(str(path), slot) for slot in (0, 1)] == expected


def test_a_slot_runs_its_pinned_release_or_what_current_is_and_nothing_outside_releases(app_root):
    assert launch.slot_release(str(app_root), None) == str(app_root / "releases" / "aaa")
    assert launch.slot_release(str(app_root), str(app_root / "releases" / "bbb")) == str(app_root / "releases" / "bbb")
    for outside in ("/usr", str(app_root / "shared"), str(app_root / "releases" / "aaa" / "venv"),
                    str(app_root / "releases" / ".." / "shared")):
        with pytest.raises(SystemExit, match="is not in"):
            launch.slot_release(str(app_root), outside)


def test_the_env_file_is_read_with_shell_quoting_and_comments(app_root):
    env_file = app_root / "shared" / "env"
    env_file.write_text("# comment\nSECRET_KEY='a b'\"'\"'c'\nEMPTY=''\nNOT_AN_ASSIGNMENT\n")
    assert launch.read_env_file(str(env_file)) == {"SECRET_KEY": "a b'c", "EMPTY": ""}
    assert launch.read_env_file(str(app_root / "missing")) == {}


def test_the_app_is_never_run_as_root():
    with pytest.raises(SystemExit, match="refusing to run the app as root"):
        launch.drop_to("root")


@as_root
def test_the_run_directory_is_roots_alone_even_if_it_was_not(app_root):
    run_dir = app_root / "run"
    run_dir.mkdir(mode=0o777)
    os.chown(run_dir, 65534, 65534)
    launch.run_dir_for_root(str(run_dir))
    info = run_dir.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o700)


def start(app_root, slot, user="nobody"):
    run_dir = app_root / "run"
    return subprocess.run(
        [sys.executable, str(LAUNCHER), "--root", str(app_root), "--slot", str(slot),
         "--state", str(app_root / "shared" / "gunicorn-slots.json"), "--config", str(app_root / "shared" / "env"),
         "--env-file", str(app_root / "shared" / "env"), "--run-dir", str(run_dir), "--user", user, "app:app"],
        capture_output=True, text=True, timeout=30, check=False)


@as_root
def test_a_canary_runs_its_pinned_release_as_the_app_user_with_a_root_record(app_root):
    write_state(app_root, {"0": "serve", "1": "canary", "releases": {"1": str(app_root / "releases" / "bbb")}})
    started = start(app_root, 1)
    assert started.returncode == 0, started.stderr
    user, cwd, fds, mode, greeting, args = started.stdout.strip().splitlines()[-1].split("|")
    assert (user, cwd, fds, mode, greeting) == ("nobody", str(app_root / "releases" / "bbb"), "1", "canary",
                                                "hello there")
    assert args.endswith(f"--chdir {app_root}/releases/bbb app:app"), args
    record_path = app_root / "run" / "slot-1.json"
    record = json.loads(record_path.read_text())
    assert (record["mode"], record["release"], record["slot"]) == ("canary", str(app_root / "releases" / "bbb"), 1)
    assert record_path.stat().st_uid == 0 and stat.S_ISSOCK((app_root / "run" / "slot-1.sock").stat().st_mode)
    # The stand-in gunicorn, as the app user, can neither rewrite nor add a record.
    forge = subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c", f"echo {{}} > {record_path}"],
                           capture_output=True, check=False)
    assert forge.returncode != 0


@as_root
def test_a_root_app_user_is_refused_before_anything_runs(app_root):
    write_state(app_root, {"0": "serve", "1": "canary"})
    started = start(app_root, 1, user="root")
    assert started.returncode != 0 and "refusing to run the app as root" in started.stderr
    assert started.stdout == ""
