"""Repository checks that need no container: the playbooks parse, variables reach roles, docs match."""
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT, run_playbook
from tests.lib.collection import assert_ansible_doc_shows_every_role, assert_tarball_is_the_collection, build


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


def test_galaxy_build_packs_the_collection_and_none_of_the_harness(tmp_path):
    # Quick feedback for galaxy.yml's build_ignore; molecule/collection installs and uses the tarball.
    assert_tarball_is_the_collection(build(ROOT, tmp_path), ROOT)


def test_ansible_doc_shows_every_role_and_entry_point_of_the_collection():
    # Through ansible.cfg's collections/ link, as `ansible-doc` in a checkout finds it; the installed
    # tarball gets the same check in molecule/collection.
    pages = assert_ansible_doc_shows_every_role(ROOT / "roles", cwd=ROOT)
    assert {Path(doc["path"]).resolve() for doc in pages.values()} == {ROOT.resolve()}, pages


def lock_entries():
    """(requirement, hashes, via) for every package in requirements.txt, the lock `make lock` writes."""
    entries = []
    for block in re.split(r"\n(?=\S)", (ROOT / "requirements.txt").read_text()):
        lines = block.splitlines()
        if not lines or lines[0].startswith("#"):
            continue
        code = " ".join(line.rstrip(" \\") for line in lines if not line.lstrip().startswith("#"))
        requirement, *hashes = [part.strip() for part in code.split("--hash=")]
        notes = [line.strip().lstrip("#").strip() for line in lines if line.lstrip().startswith("#")]
        via = [note.removeprefix("via").strip() for note in notes]
        entries.append((Requirement(requirement), hashes, [v for v in via if v]))
    return entries


def test_the_lock_pins_every_package_to_one_version_with_its_hashes():
    entries = lock_entries()
    assert len(entries) > 20, entries   # the toolchain with its dependencies, not just the direct ones
    for requirement, hashes, _ in entries:
        assert requirement.url is None and len(requirement.specifier) == 1, requirement
        assert next(iter(requirement.specifier)).operator == "==", requirement
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), requirement
    # No option lines (an index, a wheel directory, an editable path): only PyPI's files count.
    assert not re.search(r"^-|file:|/opt/|torch", (ROOT / "requirements.txt").read_text(), re.M)


def test_the_lock_was_made_from_requirements_in_as_it_is():
    direct = [Requirement(line.split("#")[0]) for line in (ROOT / "requirements.in").read_text().splitlines()
              if line.split("#")[0].strip()]
    locked = {}
    for requirement, _, via in lock_entries():
        locked.setdefault(canonicalize_name(requirement.name), []).append((requirement, via))
    for wanted in direct:
        pins = locked.get(canonicalize_name(wanted.name))
        assert pins, f"{wanted.name} is in requirements.in but not in the lock: run `make lock`"
        for pin, via in pins:
            version = next(iter(pin.specifier)).version
            assert wanted.specifier.contains(version, prereleases=True), \
                f"the lock pins {pin}, requirements.in wants {wanted}: run `make lock`"
            assert "-r requirements.in" in via, f"the lock does not know {pin.name} as a direct requirement"
    # And nothing is direct in the lock that requirements.in no longer asks for.
    named = {canonicalize_name(r.name) for r in direct}
    assert {name for name, pins in locked.items() if any("-r requirements.in" in via for _, via in pins)} == named


def pip_tasks(tasks):
    """Every ansible.builtin.pip task of a task list, blocks included."""
    for task in tasks or []:
        if "ansible.builtin.pip" in task:
            yield task
        for section in ("block", "rescue", "always"):
            yield from pip_tasks(task.get(section))


def test_pip_as_root_installs_wheels_only():
    # The roles' pip module tasks run as root (certbot's and cryptography's venvs): a wheel is
    # unpacked, an sdist's setup.py would run as root. Release venvs are python_app's build user's.
    found = {}
    for path in sorted(ROOT.glob("roles/*/tasks/*.yml")):
        if "ansible.builtin.pip:" not in path.read_text():
            continue
        for task in pip_tasks(yaml.safe_load(path.read_text())):
            found[f"{path.relative_to(ROOT)}: {task['name']}"] = (task.get("environment") or {}).get("PIP_ONLY_BINARY")
    assert len(found) >= 3, found
    assert {name: value for name, value in found.items() if value != ":all:"} == {}


def test_site_installs_every_roles_packages_in_its_one_transaction():
    """Each role's own install names variables that site.yml's up-front union lists too; a role whose
    packages were missing there would still install them, but in a transaction of its own."""
    site = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    play = next(p for p in site if p.get("hosts") == "web")
    union = " ".join(str(entry["packages"]) for entry in play["vars"]["__site_role_packages"])
    roles = {r["role"].rsplit(".", 1)[-1] for r in play["roles"]}
    for role in sorted(roles - {"certbot"}):  # certbot installs its own, once configured
        named = set()
        for tasks in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            for value in re.findall(r"common_packages: (.+)", tasks.read_text()):
                named |= set(re.findall(r"\b[a-z_]+_packages\b", value)) - {"common_packages"}
        assert named, f"{role} installs no packages through gigaflask.stack.common"
        assert all(name in union for name in named), f"playbooks/site.yml's __site_role_packages misses {named}"


def test_no_tracked_link_points_out_of_the_repository():
    """A link committed from a worktree (say .venv -> another checkout's) is dangling in every clone."""
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in listed.splitlines() if line.startswith("120000 ")]
    outside = [path for path in links if Path(os.readlink(ROOT / path)).is_absolute()
               or not Path(os.path.normpath((ROOT / path).parent / os.readlink(ROOT / path))).is_relative_to(ROOT)]
    assert outside == [], f"tracked links that leave the repository: {outside}"
