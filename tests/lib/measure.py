"""Keep numbers a test measured (timings, request counts) in .test-logs/measurements.txt.

Molecule hides test output; the numbers a closing note needs end up in one file instead.
"""
import os
import time
from pathlib import Path

LOG = Path(__file__).resolve().parents[2] / ".test-logs" / "measurements.txt"


def record(what, text):
    LOG.parent.mkdir(exist_ok=True)
    scenario = os.environ.get("MOLECULE_SCENARIO_DIRECTORY", "?").replace(str(LOG.parents[1]) + "/", "")
    with LOG.open("a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {scenario} {what}: {text}\n")
