"""gunicorn_supervisor's switch decision (plugins/filter/slots.py), on what a converged Ubuntu 20.04
host printed (fixtures/slots/: `supervisorctl status gigaflask:`, the state file, both slot records
and the digests of the gunicorn config and env file, right after a first install: slot 0 serves,
slot 1 is parked). The other cases are those readings with one thing changed, as the host shows it
when that thing happens.
"""
import base64
import json
import re
from pathlib import Path

import pytest

from ansible_collections.gigaflask.stack.plugins.filter.slots import gunicorn_slots, slot_processes

FIXTURES = Path(__file__).parent / "fixtures" / "slots"
STATUS = (FIXTURES / "status-first-install.txt").read_text()
STATE = json.loads((FIXTURES / "state-first-install.json").read_text())
RECORDS = {slot: json.loads((FIXTURES / f"record-first-install-{slot}.json").read_text()) for slot in "01"}
CONFIG_SHA, ENV_SHA = [line.split()[0] for line in (FIXTURES / "sums-first-install.txt").read_text().splitlines()]
RELEASE = RECORDS["0"]["release"]


def slurped(value):
    """A slurp result: the file's content, base64; a missing file has none."""
    if value is None:
        return {"failed": True, "msg": "file not found"}
    text = value if isinstance(value, str) else json.dumps(value)
    return {"content": base64.b64encode(text.encode()).decode()}


def judge(status=STATUS, state=STATE, records=None, desired=RELEASE, config=CONFIG_SHA, env=ENV_SHA):
    records = RECORDS if records is None else records
    return gunicorn_slots(
        {"rc": 0, "stdout_lines": status.splitlines()}, "gigaflask", state=slurped(state),
        records={"results": [dict(slurped(records.get(slot)), item=slot) for slot in "01"]},
        desired=desired, config_sha256=config, env_sha256=env)


def with_state(slot, state):
    """STATUS with the line of one slot as supervisorctl prints it in another state."""
    return re.sub(rf"^(gigaflask:gigaflask-{slot}\s+).*$", rf"\g<1>{state}", STATUS, flags=re.M)


def with_record(slot, **changes):
    return {**RECORDS, slot: {**RECORDS[slot], **changes}}


def test_the_status_lines_give_each_slot_its_state_and_pid():
    assert slot_processes(STATUS.splitlines(), "gigaflask") == {
        "0": {"state": "RUNNING", "pid": RECORDS["0"]["pid"]}, "1": {"state": "RUNNING", "pid": RECORDS["1"]["pid"]}}
    lines = ["gigaflask:gigaflask-0            FATAL     Exited too quickly (process log may have details)",
             "gigaflask:gigaflask-1            STOPPED   Dec 02 05:10 PM", "other:other-0  RUNNING   pid 7, uptime 1:00"]
    assert slot_processes(lines, "gigaflask") == {"0": {"state": "FATAL", "pid": 0}, "1": {"state": "STOPPED", "pid": 0}}


def test_a_converged_program_is_in_sync():
    now = judge()
    assert (now["in_sync"], now["why"], now["serving"], now["idle"]) == (True, [], "0", "1")
    assert now["old_release"] == RELEASE and now["records"] == RECORDS


@pytest.mark.parametrize("change, reason", [
    ({"desired": RELEASE.replace(RELEASE[-12:], "0123456789ab")}, "the serving slot 0 runs another release"),
    ({"config": "0" * 64}, "the serving slot 0 runs another gunicorn config"),
    ({"env": "0" * 64}, "the serving slot 0 runs another environment file"),
    # A record that is not of the running process: the launcher died before exec, or the file is stale.
    ({"records": with_record("0", pid=4242)}, f"slot 0 has no record of its process {RECORDS['0']['pid']}"),
    ({"records": with_record("1", mode="canary", release=RELEASE)}, "the idle slot 1 is not parked"),
    # After a reboot /run is empty: no records at all.
    ({"records": {}}, f"slot 0 has no record of its process {RECORDS['0']['pid']}"),
    ({"status": with_state("1", "BACKOFF   Exited too quickly (process log may have details)")}, "slot 1 is BACKOFF"),
], ids=["new-release", "new-config", "new-env", "stale-record", "canary-left", "no-records", "idle-backoff"])
def test_a_switch_is_due_when_what_runs_is_not_what_is_wanted(change, reason):
    now = judge(**change)
    assert not now["in_sync"] and reason in now["why"], now["why"]


def test_a_serving_slot_that_does_not_run_has_no_release_to_fall_back_to():
    now = judge(status=with_state("0", "FATAL     Exited too quickly (process log may have details)"))
    assert not now["in_sync"] and now["why"][0] == "slot 0 is FATAL" and now["old_release"] == ""


def test_the_state_file_says_which_slot_serves():
    # After one switch slot 1 serves: its record says so, slot 0 parks.
    swapped = {"0": {**RECORDS["1"], "slot": 0, "pid": RECORDS["0"]["pid"]},
               "1": {**RECORDS["0"], "slot": 1, "pid": RECORDS["1"]["pid"]}}
    now = judge(state={"0": "park", "1": "serve", "releases": {"1": RELEASE}}, records=swapped)
    assert (now["in_sync"], now["serving"], now["idle"]) == (True, "1", "0")
    # A switch interrupted with both serving: slot 0 counts as serving, slot 1 is not parked.
    both = judge(state={"0": "serve", "1": "serve"}, records=with_record("1", mode="serve", release=RELEASE))
    assert (both["serving"], both["in_sync"], both["why"]) == ("0", False, ["the idle slot 1 is not parked"])


@pytest.mark.parametrize("state", [None, "", "not json", '["0", "1"]'], ids=["missing", "empty", "garbage", "list"])
def test_a_missing_or_broken_state_file_means_slot_0_serves(state):
    now = judge(state=state)
    assert (now["serving"], now["idle"], now["in_sync"]) == ("0", "1", True)
