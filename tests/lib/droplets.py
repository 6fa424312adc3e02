"""The droplets of a scenario built on molecule/shared/droplets_create.yml, as the tests see them.

Root cannot log in once users_ssh has run, so Testinfra inspects the droplets through `docker exec`
(`testinfra_hosts = docker_hosts()`); everything a client would do goes over real SSH instead
(tests.lib.ssh), and playbook runs use Molecule's SSH inventory.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from conftest import ROOT, run_playbook


def instances():
    """Molecule's instance config: [{instance, address, user, port, identity_file}, ...]."""
    path = os.environ.get("MOLECULE_INSTANCE_CONFIG")
    if not path or not Path(path).exists():
        return []
    return yaml.safe_load(Path(path).read_text()) or []


def docker_hosts():
    """Testinfra host specs that reach each droplet with `docker exec`."""
    return [f"docker://{instance['instance']}" for instance in instances()]


class FreshDroplets:
    """Extra throwaway droplets for one test, started and removed with the shared playbooks."""

    def __init__(self, names, groups=("web",)):
        self.directory = Path(tempfile.mkdtemp(prefix="gf-droplets-"))
        # Outside Molecule's inventory (no molecule_* variables: Molecule's instance config stays
        # untouched), with the controller's Python for the local modules.
        self.extra_vars = {"droplets": [{"name": name, "groups": list(groups)} for name in names],
                           "droplets_dir": str(self.directory), "droplets_instance_config": "",
                           "ansible_python_interpreter": sys.executable}

    def __enter__(self):
        run = run_playbook(ROOT / "molecule/shared/droplets_create.yml", inventory="localhost,",
                           extra_vars=self.extra_vars)
        if run.rc != 0:
            self.__exit__(None, None, None)
            raise AssertionError(f"could not start fresh droplets:\n{run.describe()}")
        self.inventory = yaml.safe_load((self.directory / "inventory.yml").read_text())
        return self

    def __exit__(self, *exc):
        run_playbook(ROOT / "molecule/shared/droplets_destroy.yml", inventory="localhost,",
                     extra_vars=self.extra_vars)
        subprocess.run(["rm", "-rf", str(self.directory)], check=False)

    def hostvars(self):
        """{name: hostvars} of the fresh droplets from the inventory droplets_create.yml wrote."""
        found = {}
        for group in self.inventory["all"]["children"].values():
            found.update(group["hosts"])
        return found


def write_inventory(path, hosts, group_vars=None, group="web"):
    """A YAML inventory with `hosts` ({name: hostvars}) in one group."""
    inventory = {"all": {"children": {group: {"hosts": hosts, "vars": group_vars or {}}}}}
    Path(path).write_text(json.dumps(inventory))
    return path
