"""The addresses a separate database host and its web hosts reach each other at
(plugins/filter/hosts.py), from inventories as an operator writes them."""
from ansible_collections.gigaflask.stack.plugins.filter.hosts import host_addresses

HOSTVARS = {
    "web1": {"ansible_host": "203.0.113.10", "gigaflask_private_address": "10.110.0.2"},
    "web2": {"ansible_host": "203.0.113.11"},
    "web3": {},
    "db1": {"ansible_host": "203.0.113.20", "gigaflask_private_address": ""},
}


def test_the_private_address_wins_over_the_public_one():
    assert host_addresses(["web1"], HOSTVARS) == ["10.110.0.2"]


def test_without_a_private_address_the_host_is_reached_at_ansible_host():
    assert host_addresses(["web2", "db1"], HOSTVARS) == ["203.0.113.11", "203.0.113.20"]


def test_a_host_with_neither_is_named_as_in_the_inventory():
    assert host_addresses(["web3", "absent"], HOSTVARS) == ["web3", "absent"]


def test_no_hosts_no_addresses():
    assert host_addresses([], HOSTVARS) == []
    assert host_addresses(None, HOSTVARS) == []
