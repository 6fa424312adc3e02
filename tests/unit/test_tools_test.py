"""tools/test's summary: under the table, why each failed stage failed, taken from its log (CI
shows only the end of the output)."""
from conftest import ROOT, load_script

tools_test = load_script(ROOT / "tools/test", "tools_test")

LOG = """\
PLAY [Converge] ****
TASK [gigaflask.stack.common : Install nginx] ****
\x1b[0;31mfatal: [gf-fleet-1]: FAILED! => {"msg": "Failed to fetch nginx-core"}\x1b[0m
ok: [gf-fleet-2]
FAILED - RETRYING: [gf-fleet-2]: Wait until the program's slots are no longer starting (15 retries left).
>       assert end_1 <= start_2
E       AssertionError: the release commands ran at the same time
E       assert '16:02:46' <= '16:02:44'
CRITICAL Ansible return code was 2, command was: ansible-playbook site.yml
ERROR    [fleet > converge] Executed: Failed
FAILED tests/test_fleet.py::test_rolling_deploy - AssertionError: 1 failed request
"""


def test_reasons_are_the_failed_tasks_actions_and_tests_without_colour(tmp_path):
    log = tmp_path / "scenario.log"
    log.write_text(LOG)
    assert tools_test.reasons(log) == [
        'fatal: [gf-fleet-1]: FAILED! => {"msg": "Failed to fetch nginx-core"}',
        "E       AssertionError: the release commands ran at the same time",
        "CRITICAL Ansible return code was 2, command was: ansible-playbook site.yml",
        "ERROR    [fleet > converge] Executed: Failed",
        "FAILED tests/test_fleet.py::test_rolling_deploy - AssertionError: 1 failed request",
    ]
    assert tools_test.reasons(log, lines=1) == [LOG.splitlines()[-1]]


def test_the_summary_ends_with_why_each_failed_stage_failed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tools_test, "ROOT", tmp_path)
    monkeypatch.setattr(tools_test, "LOGS", tmp_path)
    failed, passed, quiet = tmp_path / "failed.log", tmp_path / "passed.log", tmp_path / "quiet.log"
    failed.write_text(LOG)
    passed.write_text(LOG)
    quiet.write_text("Traceback: killed\n")
    summary = tools_test.Summary()
    summary.add("scenario", "fleet@focal", False, 238, failed)
    summary.add("scenario", "site@focal", True, 619, passed)
    summary.add("scenario", "ssh@focal", False, 30, quiet)
    capsys.readouterr()
    summary.print(3653)
    out = capsys.readouterr().out.splitlines()
    total = next(i for i, line in enumerate(out) if line.startswith("total"))
    assert out[total + 2:] == [
        "why scenario fleet@focal failed (failed.log):",
        *(f"  {line}" for line in tools_test.reasons(failed)),
        "why scenario ssh@focal failed (quiet.log):",
        "  (no failed task or test in the log)",
    ]
    assert (tmp_path / "summary.txt").read_text().splitlines() == out


def test_stages_start_longest_first_and_the_bench_smoke_last_in_the_same_queue():
    site, fleet, default = ("site", ROOT, "site"), ("fleet", ROOT, "fleet"), ("default", ROOT, "default")
    jobs = [(default, "ubuntu2004"), (site, "ubuntu2004"), (fleet, "ubuntu2004"), (site, "ubuntu2404")]
    durations = {"site@focal": 900, "fleet@focal": 920, "default@focal": 30}
    assert tools_test.queue(jobs, durations, bench=True) == [
        ("scenario", (fleet, "ubuntu2004")), ("scenario", (site, "ubuntu2004")),
        ("scenario", (site, "ubuntu2404")), ("scenario", (default, "ubuntu2004")), ("bench", None)]
    assert tools_test.queue(jobs, durations, bench=False)[-1] == ("scenario", (default, "ubuntu2004"))


def test_a_clean_clone_orders_by_the_committed_durations_and_a_run_by_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(tools_test, "DURATIONS", tmp_path / "durations.json")
    committed = tools_test.load_durations()
    assert committed == tools_test.json.loads(tools_test.SEED_DURATIONS.read_text())
    every_pair = {tools_test.job_id(job) for job in tools_test.matrix(tools_test.discover(), "all")}
    assert set(committed) == every_pair
    (tmp_path / "durations.json").write_text('{"site@focal": 1}')
    assert tools_test.load_durations() == {"site@focal": 1}
