"""Variants of the sample app (app/) on the controller, for tests that deploy a new version."""
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
# The edit that makes a copy's /healthz answer 500 whatever else it would check (the database too):
# it imports and serves, but no health gate may let it take traffic.
BROKEN_HEALTHZ = [("def healthz():\n",
                   'def healthz():\n    return jsonify(status="broken", version=VERSION), 500\n')]


def copy_app(tmp_path_factory, name, version, edit=None, requirement=None):
    """A copy of the sample app with another VERSION, and optionally code edits or one more requirement.

    `edit` is a list of (old, new) replacements in app.py; each `old` must be there.
    """
    return write_app(tmp_path_factory.mktemp(name), version, edit, requirement)


def write_app(src, version, edit=None, requirement=None):
    """Write the sample app into the directory `src` (created if missing), as copy_app describes."""
    src = Path(src)
    src.mkdir(parents=True, exist_ok=True)
    for path in APP.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = src / path.relative_to(APP)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (src / "VERSION").write_text(version + "\n")
    if edit:
        code = (src / "app.py").read_text()
        for old, new in edit:
            assert old in code, old
            code = code.replace(old, new)
        (src / "app.py").write_text(code)
    if requirement:
        with (src / "requirements.txt").open("a") as handle:
            handle.write(requirement + "\n")
    return src
