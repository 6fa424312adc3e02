"""Repository checks that need no container: the playbooks parse, variables reach roles, docs match."""
import subprocess
import sys

import yaml

from conftest import ROOT, run_playbook


def test_site_playbook_passes_syntax_check():
    proc = subprocess.run(["ansible-playbook", "site.yml", "-i", "inventory", "--syntax-check"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_root_group_vars_reach_roles_through_the_root_inventory():
    expected = yaml.safe_load((ROOT / "group_vars/all.yml").read_text())["gigaflask_domain"]
    run = run_playbook(ROOT / "tests/probes/group_vars.yml", inventory=ROOT / "inventory", tags="probe")
    assert run.rc == 0, run.describe()
    reported = [result.get("msg") for task in run.tasks for result in task["hosts"].values()]
    assert f"tls_selfsigned_domain={expected}" in reported, run.describe()


def test_role_readmes_defaults_and_argument_specs_agree():
    proc = subprocess.run([sys.executable, "tools/role-docs", "--check"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_role_has_an_argument_spec():
    for role in sorted((ROOT / "roles").iterdir()):
        assert (role / "meta/argument_specs.yml").is_file(), f"{role.name} has no meta/argument_specs.yml"
