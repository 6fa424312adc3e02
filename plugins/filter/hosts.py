# -*- coding: utf-8 -*-
"""The address each host of the stack reaches another at, from the inventory.

A database on its own host (a [db] group apart from [web]) listens on its address and admits the web
hosts' addresses (pg_hba.conf, ufw). Each host's is its `gigaflask_private_address` when set (a
droplet's private network address), else its `ansible_host`, else its inventory name. The input
checks (gigaflask.stack.input_problems, kind ip) judge the result, naming gigaflask_private_address.
"""

DOCUMENTATION = r"""
  name: host_addresses
  short_description: The address other hosts of the stack reach each host at
  description:
    - For each host name, its C(gigaflask_private_address), else its C(ansible_host), else the name.
  positional: _input, hostvars
  options:
    _input:
      description: Inventory host names (C(groups['web']), say).
      type: list
      elements: str
      required: true
    hostvars:
      description: Ansible's C(hostvars).
      type: dict
      required: true
"""

VARIABLES = ("gigaflask_private_address", "ansible_host")


def host_address(name, hostvars):
    """One host's address: the first of VARIABLES it sets to something non-empty, else its name."""
    found = hostvars[name] if name in hostvars else {}
    for variable in VARIABLES:
        value = found[variable] if variable in found else None
        if value not in (None, ""):
            return str(value)
    return str(name)


def host_addresses(names, hostvars):
    return [host_address(name, hostvars) for name in names or []]


class FilterModule(object):
    def filters(self):
        return {"host_addresses": host_addresses}
