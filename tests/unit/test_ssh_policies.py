"""users_ssh's hardened algorithm set for each release (roles/users_ssh/vars/main.yml) against the
built-in ssh-audit policy it is meant to pass, and the tests' policy for each release
(tests/lib/ssh.py) against the role's. The Molecule scenarios prove on a real sshd that the policy
passes; this catches, without a container, a list or a policy name changed in one place only (or an
ssh-audit upgrade that changes a policy)."""
from pathlib import Path

import pytest
import yaml
from ssh_audit.builtin_policies import BUILTIN_POLICIES

from tests.lib.ssh import HARDENED_POLICY

VARS = Path(__file__).resolve().parents[2] / "roles" / "users_ssh" / "vars" / "main.yml"
RELEASES = yaml.safe_load(VARS.read_text())["__users_ssh_release_algorithms"]
# sshd appends these to the key exchanges it offers by itself (the Terrapin countermeasure; ext-info-s
# from OpenSSH 9.6): no release's KexAlgorithms names them.
ADDED_BY_SSHD = ["ext-info-s", "kex-strict-s-v00@openssh.com"]


def test_the_role_and_the_tests_name_the_same_policy_for_each_release():
    assert {release: chosen["policy"] for release, chosen in RELEASES.items()} == HARDENED_POLICY


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_each_release_offers_exactly_its_policy_lists_in_its_order(release):
    chosen = RELEASES[release]
    policy = BUILTIN_POLICIES[chosen["policy"]]
    assert chosen["kex"] == [kex for kex in policy["kex"] if kex not in ADDED_BY_SSHD]
    assert chosen["ciphers"] == policy["ciphers"]
    assert chosen["macs"] == policy["macs"]
    assert chosen["host_key"] == policy["host_keys"]
