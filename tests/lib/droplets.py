"""The droplets of a scenario built on molecule/shared/droplets_create.yml, as the tests see them.

Root cannot log in once users_ssh has run, so Testinfra inspects the droplets through `docker exec`
(`testinfra_hosts = docker_hosts()`); everything a client would do goes over real SSH instead
(tests.lib.ssh), and playbook runs use Molecule's SSH inventory.
"""
import json
import os
from pathlib import Path

import yaml


def instances(group=None):
    """Molecule's instance config: [{instance, address, user, port, identity_file, groups}, ...],
    only the droplets in `group` when given."""
    path = os.environ.get("MOLECULE_INSTANCE_CONFIG")
    if not path or not Path(path).exists():
        return []
    found = yaml.safe_load(Path(path).read_text()) or []
    return [i for i in found if group is None or group in i.get("groups", [])]


def docker_hosts(group=None):
    """Testinfra host specs that reach each droplet (of `group`) with `docker exec`."""
    return [f"docker://{instance['instance']}" for instance in instances(group)]


def write_inventory(path, hosts, group_vars=None, group="web"):
    """A YAML inventory with `hosts` ({name: hostvars}) in one group."""
    inventory = {"all": {"children": {group: {"hosts": hosts, "vars": group_vars or {}}}}}
    Path(path).write_text(json.dumps(inventory))
    return path
