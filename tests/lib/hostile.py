"""Hostile values: what an operator might paste (from a wiki, a CI parameter) that would add a line,
a directive or an option wherever a role writes the value. Each role's bad-input test feeds one
class at a time to every free-text variable and expects the run to fail naming each of them.
"""
import re

# Class name -> how it spoils a good value.
HOSTILE = {
    "semicolon": lambda value: value + "; x",
    "open-brace": lambda value: value + "{",
    "close-brace": lambda value: value + "}",
    "newline": lambda value: value + "\nPermitRootLogin yes",
    "space": lambda value: value + " x",
    "double-quote": lambda value: value + '"',
    "single-quote": lambda value: value + "'",
    "leading-dash": lambda value: "-" + value,
}


def spoil(value, cls):
    """`value` with the hostile class `cls` applied."""
    return HOSTILE[cls](value)


def named(run, label):
    """Whether a failure message of `run` names `label`: a variable (alone or with an element index,
    `var[0]`, `var[0].field`) or exactly `var[0].field`; never as the prefix of a longer name."""
    pattern = re.compile(r"(?<![\w.\[])%s(?:\[\d+\](?:\.\w+)?)?(?![\w\[.])" % re.escape(label))
    return any(pattern.search(message) for message in run.failure_messages)
