"""The collection as `ansible-galaxy collection build` packs it and `ansible-doc -t role` shows it.

Used on the repository itself (tests/test_repository.py: a tarball built into a temporary
directory, ansible-doc through ansible.cfg's collections/ link) and on what a user gets
(molecule/collection: the tarball its converge built and the copy it installed from it).
"""
import json
import re
import subprocess
import tarfile
from pathlib import Path

import yaml

COLLECTION = "gigaflask.stack"
# What galaxy.yml's build_ignore keeps out, at the top of the tarball: the test and benchmark
# harness, the controller toolchain, logs and caches, and the development link collections/.
HARNESS = {".ansible", ".cache", ".ci", ".config", ".demo", ".git", ".pytest_cache", ".test-logs", ".venv",
           "bench", "collections", "conftest.py", "Makefile", "molecule", "pytest.ini", "requirements.in",
           "requirements.txt", "tests", "tools"}


def build(root, output):
    """`ansible-galaxy collection build root --output-path output`; the tarball's path."""
    proc = subprocess.run(["ansible-galaxy", "collection", "build", str(root), "--output-path", str(output)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarballs = sorted(Path(output).glob("*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


def tarball_names(tarball):
    with tarfile.open(tarball) as tar:
        return {member.name.removeprefix("./").rstrip("/") for member in tar.getmembers()}


def assert_tarball_is_the_collection(tarball, root):
    """The tarball holds every role (its Molecule scenarios aside), playbook, plugin and the app,
    meta/runtime.yml and the README, with galaxy.yml's identity; and none of the harness or logs."""
    names = tarball_names(tarball)
    harness = sorted(n for n in names if n.split("/")[0] in HARNESS
                     or re.match(r"roles/[^/]+/molecule(/|$)", n)
                     or re.search(r"(^|/)__pycache__(/|$)|\.(log|pyc|tar\.gz)$", n))
    assert harness == [], f"in the tarball, but not the collection (galaxy.yml build_ignore): {harness}"
    tracked = subprocess.run(["git", "ls-files", "--", "roles", "playbooks", "plugins", "app"], cwd=root,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    wanted = {path for path in tracked if not re.match(r"roles/[^/]+/molecule/", path)}
    wanted |= {"meta/runtime.yml", "README.md", "MANIFEST.json", "FILES.json", "site.yml"}
    assert len(wanted) > 50, wanted
    missing = sorted(wanted - names)
    assert missing == [], f"not in the tarball: {missing}"

    galaxy = yaml.safe_load((Path(root) / "galaxy.yml").read_text())
    with tarfile.open(tarball) as tar:
        info = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
        runtime = yaml.safe_load(tar.extractfile("meta/runtime.yml"))
    identity = {key: galaxy[key] for key in ("namespace", "name", "version", "dependencies")}
    assert {key: info[key] for key in identity} == identity, info
    assert runtime == yaml.safe_load((Path(root) / "meta/runtime.yml").read_text()), runtime
    assert Path(tarball).name == "{namespace}-{name}-{version}.tar.gz".format(**galaxy), tarball


def argument_specs(roles_dir):
    """{FQCN: {entry point: {option names}}} from every role's meta/argument_specs.yml."""
    specs = {}
    for path in sorted(Path(roles_dir).glob("*/meta/argument_specs.yml")):
        entry_points = yaml.safe_load(path.read_text())["argument_specs"]
        specs[f"{COLLECTION}.{path.parents[1].name}"] = {
            name: set((spec or {}).get("options") or {}) for name, spec in entry_points.items()}
    return specs


def ansible_doc(*args, env=None, cwd=None):
    """`ansible-doc -t role -j ARGS`, parsed."""
    proc = subprocess.run(["ansible-doc", "-t", "role", "-j", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def assert_ansible_doc_shows_every_role(roles_dir, env=None, cwd=None):
    """The list (`-l gigaflask.stack`) and each role's page show exactly the roles, entry points
    and options of the spec files under roles_dir. Returns the role pages (they carry `path`)."""
    expected = argument_specs(roles_dir)
    assert expected, f"no meta/argument_specs.yml under {roles_dir}"
    listed = ansible_doc("-l", COLLECTION, env=env, cwd=cwd)
    listed = {role: set(doc["entry_points"]) for role, doc in listed.items()}
    in_files = {role: set(entry_points) for role, entry_points in expected.items()}
    assert listed == in_files, f"ansible-doc -t role -l {COLLECTION}: {listed}; the spec files: {in_files}"
    pages = ansible_doc(*expected, env=env, cwd=cwd)
    shown = {role: {name: set(entry.get("options") or {}) for name, entry in doc["entry_points"].items()}
             for role, doc in pages.items()}
    assert shown == expected, f"ansible-doc -t role: {shown}; the spec files: {expected}"
    return pages
