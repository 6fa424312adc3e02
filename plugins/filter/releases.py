# -*- coding: utf-8 -*-
"""python_app's choices among its releases (roles/python_app/tasks/prune.yml and rollback.yml).

Both read the release directories and their marks with ansible.builtin.find (`.release.json`: the
build completed; `.activated`: its mtime is when the release last went live; `.failed`: the health
gate refused it; `.rolled-back`: it was rolled back from), and these filters choose:

    releases_to_prune   the releases to delete: all but the release this run built, the most
                        recently activated ones (python_app_keep_releases in all; failed and
                        rolled-back ones rank last), the release `current` pointed at before the
                        run, and any release a running process names in its command line;
    rollback_target     the release to roll back to: the most recently activated one that is
                        complete, neither failed nor rolled back, and not current ('' if none);
    release_origin      one line saying what a release was built from, for messages: its
                        .release.json (or the source a run is about to build).

The unit tests (tests/unit/test_releases.py) feed them find results captured from a host.
"""
import os
import re

DOCUMENTATION = r"""
  name: releases_to_prune
  short_description: The python_app releases to delete, and the release to roll back to
  description:
    - C(releases_to_prune) returns the release directories to delete; C(rollback_target) returns the
      release to roll back to, or an empty string.
  positional: _input
  options:
    _input:
      description: The ansible.builtin.find result of the release directories (C(releases_to_prune)),
        or of the release marks (C(rollback_target)).
      type: dict
      required: true
"""

ACTIVATED = ".activated"
BAD_MARKS = (".failed", ".rolled-back")


def release_marks(marks):
    """find result of the marks -> {release directory: {mark name: mtime}}."""
    found = {}
    for entry in (marks or {}).get("files", []):
        release, name = os.path.split(entry["path"])
        found.setdefault(release, {})[name] = entry.get("mtime", 0)
    return found


def newest_first(releases, marks):
    """Release directories, most recently activated first; failed, rolled-back and never activated last."""
    def went_live(path):
        names = marks.get(path, {})
        return 0 if any(bad in names for bad in BAD_MARKS) else names.get(ACTIVATED, 0)
    return sorted(releases, key=went_live, reverse=True)


def releases_to_prune(releases, marks, keep, built, current="", processes="", root=""):
    """The release directories to delete (see the module docstring)."""
    paths = [entry["path"] for entry in (releases or {}).get("files", [])]
    ranked = newest_first(paths, release_marks(marks))
    kept = ([built] + [path for path in ranked if path != built])[:int(keep)]
    kept += [current] + re.findall(re.escape(root) + r"/releases/[^/\s]+", processes or "")
    return [path for path in ranked if path not in kept]


def rollback_target(marks, current=""):
    """The release to roll back to, or '' (see the module docstring)."""
    found = release_marks(marks)
    candidates = [path for path, names in found.items()
                  if ACTIVATED in names and ".release.json" in names
                  and not any(bad in names for bad in BAD_MARKS) and path != current]
    return newest_first(candidates, found)[0] if candidates else ""


def release_origin(info):
    """`git <repo> <version> (commit abc123def456)`, `local <src> (archive sha256 0123abcd...)`, or
    'unknown source' for a release without a readable record."""
    if not isinstance(info, dict) or info.get("source") not in ("git", "local"):
        return "unknown source"
    if info["source"] == "git":
        return "git %s %s (commit %s)" % (info.get("repo", "?"), info.get("version", "?"),
                                          str(info.get("commit", "?"))[:12])
    return "local %s (archive sha256 %s...)" % (info.get("src", "?"), str(info.get("archive_sha256", "?"))[:12])


class FilterModule(object):
    def filters(self):
        return {"releases_to_prune": releases_to_prune, "rollback_target": rollback_target,
                "release_origin": release_origin}
