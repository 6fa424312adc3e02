"""Fixtures shared by every Molecule scenario's Testinfra tests (and the repository tests).

Molecule runs Testinfra with its provisioner environment (ANSIBLE_CONFIG, MOLECULE_INVENTORY_FILE,
MOLECULE_SCENARIO_DIRECTORY ...), so these helpers drive ansible-playbook exactly as Molecule does.
"""
import importlib.machinery
import importlib.util
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import sys

import pytest

ROOT = Path(__file__).resolve().parent
# The repository is the gigaflask.stack collection (collections/ links it under its FQCN): plugin
# unit tests import it as ansible_collections.gigaflask.stack, as Ansible loads it.
sys.path.insert(0, str(ROOT / "collections"))


def load_script(path, name):
    """The Python script at path (no .py suffix: tools/test, a role's files/) as a module."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    loader.exec_module(module)
    return module


@dataclass
class PlaybookRun:
    """One ansible-playbook run, parsed from the ansible.posix.json callback."""

    rc: int
    output: str
    stats: dict = field(default_factory=dict)
    tasks: list = field(default_factory=list)

    def total(self, key):
        return sum(host.get(key, 0) for host in self.stats.values())

    @property
    def changed(self):
        return self.total("changed")

    @property
    def failed(self):
        return self.total("failures") + self.total("unreachable")

    def results(self, status):
        """(task name, host, result) for every host result with the given status."""
        found = []
        for task in self.tasks:
            for host, result in task["hosts"].items():
                if status == "changed" and result.get("changed"):
                    found.append((task["task"]["name"], host, result))
                elif status == "failed" and (result.get("failed") or result.get("unreachable")):
                    found.append((task["task"]["name"], host, result))
        return found

    @property
    def changed_tasks(self):
        return [f"{host}: {name}" for name, host, _ in self.results("changed")]

    @property
    def failure_messages(self):
        """The failing tasks and what they said, one string per failure."""
        messages = []
        for name, host, result in self.results("failed"):
            text = " ".join(str(result.get(k, "")) for k in ("msg", "stderr", "stdout") if result.get(k))
            messages.append(f"{host}: {name}: {text}")
        return messages

    @classmethod
    def from_process(cls, proc):
        """The run of a finished ansible-playbook process that printed the ansible.posix.json callback."""
        run = cls(rc=proc.returncode, output=proc.stdout + proc.stderr)
        try:
            start = proc.stdout.index("{")
            data = json.loads(proc.stdout[start:])
        except ValueError:
            return run
        run.stats = data.get("stats", {})
        run.tasks = [task for play in data.get("plays", []) for task in play.get("tasks", [])]
        return run

    def describe(self):
        return (f"rc={self.rc} changed={self.changed} failed={self.failed}\n"
                f"changed tasks: {self.changed_tasks}\nfailures: {self.failure_messages}\n"
                f"output tail:\n{self.output[-3000:]}")


def run_playbook(playbook, *, inventory=None, extra_vars=None, check=False, diff=False, tags=None,
                 skip_tags=None, limit=None, env=None, timeout=1800, args=()):
    """Run a playbook with the JSON callback and return a PlaybookRun.

    A relative `playbook` is looked up in the current Molecule scenario directory first, then in the
    repository root. `inventory` defaults to Molecule's inventory for the scenario. `args` are more
    ansible-playbook arguments (`["--start-at-task", NAME]`).
    """
    path = Path(playbook)
    if not path.is_absolute():
        scenario = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", ROOT))
        path = scenario / playbook if (scenario / playbook).exists() else ROOT / playbook
    cmd = ["ansible-playbook", str(path)]
    inventory = inventory or os.environ.get("MOLECULE_INVENTORY_FILE")
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["--extra-vars", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if tags:
        cmd += ["--tags", ",".join(tags) if isinstance(tags, (list, tuple)) else tags]
    if skip_tags:
        cmd += ["--skip-tags", ",".join(skip_tags) if isinstance(skip_tags, (list, tuple)) else skip_tags]
    if limit:
        cmd += ["--limit", limit]
    cmd += list(args)
    run_env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    run_env.update(env or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=timeout, check=False)
    return PlaybookRun.from_process(proc)


@pytest.fixture(scope="session")
def ansible_playbook():
    """`ansible_playbook("converge.yml", check=True)` runs a playbook against the scenario's hosts."""
    return run_playbook


def assert_no_changes(run):
    """The run succeeded and changed nothing; otherwise say which tasks did."""
    assert run.rc == 0 and run.failed == 0, run.describe()
    assert run.changed == 0, run.describe()


def assert_rejected_naming(run, variable):
    """The run failed, a failure message names the variable, and no task changed anything."""
    assert run.rc != 0, run.describe()
    assert any(variable in message for message in run.failure_messages), run.describe()
    assert run.changed == 0, run.describe()


def journal(host, unit, lines=40):
    """The tail of a unit's journal on a Testinfra host, for assertion messages."""
    return host.run(f"journalctl -u {unit} -n {lines} --no-pager").stdout
