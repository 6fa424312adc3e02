"""python_app's choice of releases to prune and of the release to roll back to
(plugins/filter/releases.py), on ansible.builtin.find results and `ps -e -o args=` captured from an
Ubuntu 20.04 container holding one release of each kind (fixtures/releases/):

    aaa  activated at t=1000              ddd  activated at t=2500, then failed its health gate
    bbb  activated at t=2000, rolled back  eee  complete, never activated (the release just built)
    ccc  activated at t=3000, `current`    fff  no .release.json (an interrupted build)
    ggg  activated at t=1500, a process still runs from it (a gunicorn master draining)
"""
import json
from pathlib import Path

import pytest

from ansible_collections.gigaflask.stack.plugins.filter.releases import (release_origin, releases_to_prune,
                                                                          rollback_target)

FIXTURES = Path(__file__).parent / "fixtures" / "releases"
ROOT = "/srv/gigaflask"
RELEASES = json.loads((FIXTURES / "find-releases.json").read_text())
MARKS = json.loads((FIXTURES / "find-marks.json").read_text())
PS = (FIXTURES / "ps.txt").read_text()
CURRENT = (FIXTURES / "current.txt").read_text().strip()


def at(*names):
    return sorted(f"{ROOT}/releases/{name}" for name in names)


def without(marks, *paths):
    """The find result as it would be without some mark files."""
    return {**marks, "files": [f for f in marks["files"] if f["path"] not in [f"{ROOT}/releases/{p}" for p in paths]]}


def test_the_fixture_is_what_the_docstring_says():
    assert CURRENT == f"{ROOT}/releases/ccc"
    assert len(RELEASES["files"]) == 7 and f"{ROOT}/releases/ggg/venv/bin/gunicorn" in PS


@pytest.mark.parametrize("keep, pruned", [
    # The new release, then the newest activated: ccc; ggg stays anyway (in use), and so does ccc.
    (2, ["aaa", "bbb", "ddd", "fff"]),
    (3, ["aaa", "bbb", "ddd", "fff"]),
    # A fourth place goes to aaa, the newest activated left; failed, rolled-back, incomplete go first.
    (4, ["bbb", "ddd", "fff"]),
])
def test_prune_keeps_the_new_release_the_newest_current_and_what_runs(keep, pruned):
    chosen = releases_to_prune(RELEASES, MARKS, keep, f"{ROOT}/releases/eee", CURRENT, PS, ROOT)
    assert sorted(chosen) == at(*pruned)


def test_prune_keeps_what_current_was_and_what_runs_even_when_they_rank_last():
    # The release current pointed at before the run was rolled back from, and ggg's process runs.
    chosen = releases_to_prune(RELEASES, MARKS, 2, f"{ROOT}/releases/eee", f"{ROOT}/releases/bbb", PS, ROOT)
    assert sorted(chosen) == at("aaa", "ddd", "fff")
    assert f"{ROOT}/releases/ggg" not in releases_to_prune(RELEASES, MARKS, 2, f"{ROOT}/releases/eee", CURRENT,
                                                           PS, ROOT)
    # Without the process, ggg is only the second newest activated: keep 2 removes it.
    assert f"{ROOT}/releases/ggg" in releases_to_prune(RELEASES, MARKS, 2, f"{ROOT}/releases/eee", CURRENT, "", ROOT)


def test_prune_of_another_root_ignores_processes_of_this_one():
    chosen = releases_to_prune(RELEASES, MARKS, 2, f"{ROOT}/releases/eee", CURRENT, PS.replace(ROOT, "/srv/other"),
                               ROOT)
    assert f"{ROOT}/releases/ggg" in chosen


def test_rollback_goes_to_the_newest_activated_good_release_other_than_current():
    # ddd went live after ggg but failed; bbb was rolled back from; eee never went live.
    assert rollback_target(MARKS, CURRENT) == f"{ROOT}/releases/ggg"
    # Rolled back to ggg once (ccc now marked), the next goes to aaa.
    marked = {**MARKS, "files": MARKS["files"] + [{"path": f"{ROOT}/releases/ccc/.rolled-back", "mtime": 4000}]}
    assert rollback_target(marked, f"{ROOT}/releases/ggg") == f"{ROOT}/releases/aaa"


def test_rollback_needs_a_complete_release_and_says_so_with_an_empty_answer():
    incomplete = without(MARKS, "ggg/.release.json", "aaa/.release.json")
    assert rollback_target(incomplete, CURRENT) == ""
    assert rollback_target({"files": []}, "") == ""


@pytest.mark.parametrize("info, origin", [
    ({"source": "local", "src": "/home/me/app", "archive_sha256": "0123456789abcdef0123"},
     "local /home/me/app (archive sha256 0123456789ab...)"),
    ({"source": "git", "repo": "git@example.com:me/app.git", "version": "v1.2.0", "commit": "a" * 40},
     "git git@example.com:me/app.git v1.2.0 (commit aaaaaaaaaaaa)"),
    ({}, "unknown source"),
    ("not json", "unknown source"),
])
def test_release_origin_says_what_a_release_was_built_from(info, origin):
    assert release_origin(info) == origin
