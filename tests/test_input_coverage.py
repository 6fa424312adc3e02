"""Every role variable that can reach the server is checked before anything changes.

Each variable in a role's `main` argument spec is checked by type (int, float, bool, or a fixed set
of choices) or, if it is free text (str, path, a list or dict of them), by pattern: listed by name
in the role's `__<role>_input_checks` (vars/main.yml), which validate.yml judges with the
collection's `gigaflask.stack.input_problems` filter. A free-text value with no pattern could add a
line or a directive to a configuration file, or an option to a command.
"""
import pytest
import yaml

from conftest import ROOT

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta/argument_specs.yml").exists())
PUBLIC = [r for r in ROLES if r != "common"]
TYPED = {"int", "float", "bool"}


def specs_of(role):
    return yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]


def checked_by_pattern(role):
    vars_file = ROOT / "roles" / role / "vars/main.yml"
    data = yaml.safe_load(vars_file.read_text()) if vars_file.exists() else {}
    return {check["name"] for check in (data or {}).get(f"__{role}_input_checks", [])}


@pytest.mark.parametrize("role", PUBLIC)
def test_every_free_text_variable_is_checked_by_pattern(role):
    options = specs_of(role)["main"].get("options", {})
    patterns = checked_by_pattern(role)
    unchecked = [name for name, spec in sorted(options.items())
                 if spec.get("type", "str") not in TYPED and "choices" not in spec
                 and not (spec.get("type") == "list" and spec.get("elements") in TYPED)
                 and name not in patterns]
    assert not unchecked, (f"{role}: free-text variables with no pattern check; list them in "
                           f"__{role}_input_checks (vars/main.yml): {unchecked}")


@pytest.mark.parametrize("role", PUBLIC)
def test_every_pattern_check_names_a_variable_of_the_role_and_a_known_kind(role):
    from ansible_collections.gigaflask.stack.plugins.filter.input_checks import KINDS
    vars_file = ROOT / "roles" / role / "vars/main.yml"
    data = yaml.safe_load(vars_file.read_text()) if vars_file.exists() else {}
    options = specs_of(role)["main"].get("options", {})
    for check in (data or {}).get(f"__{role}_input_checks", []):
        assert check["name"] in options, f"{role}: {check['name']} is checked but has no argument spec"
        kinds = list(check["fields"].values()) if "fields" in check else [check["kind"]]
        for kind in kinds:
            assert kind in KINDS or kind.startswith("regex:"), f"{role}: unknown kind {kind} for {check['name']}"
