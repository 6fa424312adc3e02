# -*- coding: utf-8 -*-
"""The distribution packages a site.yml run needs, for one apt transaction before the roles run.

site.yml lists each role's packages with the tags the role runs under. A run installs the packages
of the roles its --tags/--skip-tags select: `--tags nginx` on a fresh host installs nginx's
packages, not PostgreSQL or fail2ban, which no role of that run would configure.
"""

DOCUMENTATION = r"""
  name: packages_for_tags
  short_description: The packages of the roles a run's tags select, once each, in order
  description:
    - A role is selected when the run has no --tags (C(ansible_run_tags) is C([all])), or when one of
      its tags is among them; it is left out when one of its tags is skipped. C(always) selects
      every role, as it does tasks.
  positional: _input, run_tags, skip_tags
  options:
    _input:
      description: The roles, as C({tags, packages}) mappings.
      type: list
      elements: dict
      required: true
    run_tags:
      description: C(ansible_run_tags).
      type: list
      elements: str
      required: true
    skip_tags:
      description: C(ansible_skip_tags).
      type: list
      elements: str
      required: true
"""

from ansible.errors import AnsibleFilterError


def _selected(tags, run_tags, skip_tags):
    if set(tags) & set(skip_tags):
        return False
    return bool({"all", "always"} & set(run_tags)) or bool(set(tags) & set(run_tags))


def packages_for_tags(roles, run_tags, skip_tags):
    packages = []
    for role in roles:
        if not isinstance(role, dict) or not isinstance(role.get("tags"), list) \
                or not isinstance(role.get("packages"), list):
            raise AnsibleFilterError("packages_for_tags expects {tags: [...], packages: [...]} entries, got %r"
                                     % (role,))
        if _selected(role["tags"], run_tags, skip_tags):
            packages.extend(p for p in role["packages"] if p not in packages)
    return packages


class FilterModule(object):
    def filters(self):
        return {"packages_for_tags": packages_for_tags}
