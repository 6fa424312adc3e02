# -*- coding: utf-8 -*-
"""gunicorn_supervisor's decision (roles/gunicorn_supervisor/tasks/serve.yml): what each slot of the
program runs, which slot serves, and whether a switch is due.

serve.yml only reads: `supervisorctl status <program>:`, the state file Ansible writes (slot modes
and pinned releases), each slot's record (written by the launcher as root before it drops to the
app user: pid, mode, release, digests of the gunicorn config and the env file), and the digests of
the config and env file on disk now. One call judges them all:

    "{{ __status | gigaflask.stack.gunicorn_slots(program, state=__state_raw, records=__records_raw,
                                                   desired=release_dir, config_sha256=..., env_sha256=...) }}"

The unit tests (tests/unit/test_slots.py) feed it outputs captured from a converged host.
"""
import base64
import json

DOCUMENTATION = r"""
  name: gunicorn_slots
  short_description: What each slot of a gunicorn_supervisor program runs, and whether to switch
  description:
    - Returns C(procs) (slot -> state, pid), C(records), C(serving) and C(idle) (slot numbers as
      strings), C(old_release) (what the serving slot runs, empty when it does not run), C(in_sync)
      and C(why) (the reasons a switch is due; empty when in sync).
  positional: _input, program
  options:
    _input:
      description: The registered result of C(supervisorctl status <program>:).
      type: dict
      required: true
    program:
      description: The supervisor program (its processes are C(<program>:<program>-N)).
      type: str
      required: true
    state:
      description: The C(slurp) result of the state file (missing or unreadable means the defaults).
      type: dict
    records:
      description: The looped C(slurp) results of the slot records (C(item) is the slot).
      type: dict
    desired:
      description: The release directory the serving slot must run.
      type: str
    config_sha256:
      description: SHA-256 of the gunicorn config on disk.
      type: str
    env_sha256:
      description: SHA-256 of the environment file on disk.
      type: str
"""

DEFAULT_MODES = {"0": "serve", "1": "park"}


def slot_processes(lines, program):
    """`supervisorctl status <program>:` lines -> {slot: {state, pid}} (pid 0 when not running)."""
    processes = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith(program + ":"):
            continue
        pid = int(fields[3].rstrip(",")) if len(fields) > 3 and fields[2] == "pid" else 0
        processes[fields[0].rsplit("-", 1)[-1]] = {"state": fields[1], "pid": pid}
    return processes


def _slurped_json(result):
    """The JSON object a slurp result holds; None when the file was missing or is not an object."""
    try:
        value = json.loads(base64.b64decode((result or {}).get("content", "")))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def gunicorn_slots(status, program, state=None, records=None, desired="", config_sha256="", env_sha256=""):
    procs = slot_processes((status or {}).get("stdout_lines", []), program)
    modes = _slurped_json(state) or DEFAULT_MODES
    found = {}
    for result in (records or {}).get("results", []):
        record = _slurped_json(result)
        if record is not None:
            found[str(result.get("item"))] = record
    serving = "1" if modes.get("1") == "serve" and modes.get("0") != "serve" else "0"
    idle = "0" if serving == "1" else "1"

    def running(slot):
        proc, record = procs.get(slot, {}), found.get(slot, {})
        if proc.get("state") != "RUNNING":
            return "slot %s is %s" % (slot, proc.get("state", "not in supervisor"))
        if record.get("pid") != proc["pid"]:
            return "slot %s has no record of its process %s" % (slot, proc["pid"])
        return None

    why = []
    problem = running(serving)
    if problem:
        why.append(problem)
    else:
        record = found[serving]
        for key, wanted, what in (("mode", "serve", "mode"), ("release", desired, "release"),
                                  ("config_sha256", config_sha256, "gunicorn config"),
                                  ("env_sha256", env_sha256, "environment file")):
            if record.get(key) != wanted:
                why.append("the serving slot %s runs another %s" % (serving, what))
    problem = running(idle)
    if problem:
        why.append(problem)
    elif found[idle].get("mode") != "park":
        why.append("the idle slot %s is not parked" % idle)

    serving_release = found.get(serving, {}).get("release") or ""
    return {
        "procs": procs,
        "records": found,
        "serving": serving,
        "idle": idle,
        "old_release": serving_release if procs.get(serving, {}).get("state") == "RUNNING" else "",
        "in_sync": not why,
        "why": why,
    }


class FilterModule(object):
    def filters(self):
        return {"gunicorn_slots": gunicorn_slots}
