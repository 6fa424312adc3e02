"""Which roles' packages site.yml installs up front for a run's tags (plugins/filter/packages.py)."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gigaflask.stack.plugins.filter.packages import packages_for_tags

ROLES = [
    {"tags": ["users", "ssh"], "packages": ["openssh-server"]},
    {"tags": ["firewall", "fail2ban"], "packages": ["ufw", "fail2ban"]},
    {"tags": ["gunicorn", "app"], "packages": ["supervisor", "python3-venv"]},
    {"tags": ["app"], "packages": ["python3-venv", "git"]},
    {"tags": ["nginx"], "packages": ["nginx", "ssl-cert"]},
]


@pytest.mark.parametrize("run_tags, skip_tags, expected", [
    (["all"], [], ["openssh-server", "ufw", "fail2ban", "supervisor", "python3-venv", "git", "nginx", "ssl-cert"]),
    (["nginx"], [], ["nginx", "ssl-cert"]),
    (["app"], [], ["supervisor", "python3-venv", "git"]),
    (["fail2ban", "ssh"], [], ["openssh-server", "ufw", "fail2ban"]),
    (["all"], ["app"], ["openssh-server", "ufw", "fail2ban", "nginx", "ssl-cert"]),
    (["nginx"], ["nginx"], []),
    (["always"], [], ["openssh-server", "ufw", "fail2ban", "supervisor", "python3-venv", "git", "nginx", "ssl-cert"]),
    (["certbot"], [], []),
])
def test_the_roles_the_tags_select_once_each_in_order(run_tags, skip_tags, expected):
    assert packages_for_tags(ROLES, run_tags, skip_tags) == expected


@pytest.mark.parametrize("bad", [[{"tags": "nginx", "packages": ["nginx"]}], [{"tags": ["nginx"]}], ["nginx"]])
def test_an_entry_without_lists_of_tags_and_packages_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="packages_for_tags expects"):
        packages_for_tags(bad, ["all"], [])
