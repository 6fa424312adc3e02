"""Helpers shared by Testinfra tests of several scenarios (import as `from tests.lib import ...`)."""
