"""Hostile input for the bad-input tests of the role scenarios (issue 13): what an operator could
paste from a wiki or a CI parameter that would add a directive, a line or an option to what a role
writes. Each pattern turns a good value into a bad one; a role must refuse every variant, naming
the variable, before anything on the host changes.

    run = ansible_playbook("converge.yml", extra_vars=hostile_vars(GOOD, "semicolon"))
    assert_rejected_naming_each(run, names)
"""
import re

# Pattern name -> how it spoils a good string value.
PATTERNS = {
    "semicolon": lambda v: f"{v}; return 200",
    "open-brace": lambda v: f"{v} {{",
    "close-brace": lambda v: f"{v}}}",
    "newline": lambda v: f"{v}\nreturn 200;",
    "space": lambda v: f"{v} x",
    "double-quote": lambda v: f'{v}"',
    "single-quote": lambda v: f"'{v}'",
    "leading-dash": lambda v: f"-{v}",
}


def spoil(value, pattern):
    """The hostile variant of a good value: a string spoiled; a list with a spoiled element after a
    good one (the message must name the element); a dict with every key and every value spoiled."""
    spoiler = PATTERNS[pattern]
    if isinstance(value, list):
        return [value[0], spoiler(value[0])]
    if isinstance(value, dict):
        return {spoiler(key): spoiler(val) for key, val in value.items()}
    return spoiler(value)


def hostile_vars(good, pattern, allowed=None):
    """Extra vars with every variable of `good` spoiled by `pattern`, except the variables for which
    `allowed` (variable -> set of patterns) says the pattern is legitimate (a quoted header value may
    hold spaces and ';')."""
    allowed = allowed or {}
    return {name: spoil(value, pattern) for name, value in good.items() if pattern not in allowed.get(name, ())}


def named(run, label):
    """Whether a failure message of `run` names `label`: a variable (alone or with an element index or
    key, `var[0]`, `var['KEY']`, `var[0].field`) or exactly `var[0].field`; never as the prefix of a
    longer name."""
    pattern = re.compile(r"(?<![\w.\[])%s(?:\[(?:\d+|'[^']*'|\"[^\"]*\")\](?:\.\w+)?)?(?![\w\[.])"
                         % re.escape(label))
    return any(pattern.search(message) for message in run.failure_messages)


def unnamed(run, names):
    """The variables among `names` that no failure message of `run` names."""
    return [name for name in names if not named(run, name)]
