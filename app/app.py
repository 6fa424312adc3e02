"""The tutorial's minimal Flask app, grown just enough to be tested through a real deployment.

Run it the tutorial's way: ``gunicorn -b localhost:8000 -w 4 app:app``.

With ``DATABASE_URL`` set (python_app writes it when the postgresql role runs), notes live in that
database: the schema comes from the Alembic migrations in migrations/ (``flask --app manage db
upgrade``, the release command deploys run before a release takes traffic), and /healthz checks the
connection. Without it the app runs as before and /notes answers 503.

Alembic is manage.py's alone: the served app never imports it, so every gunicorn worker boots
without it (a third of a second less each).
"""
import logging
import os
import secrets
import re
from functools import lru_cache
from pathlib import Path


from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import func, text

VERSION = (Path(__file__).with_name("VERSION").read_text(encoding="utf-8").strip()
           if Path(__file__).with_name("VERSION").exists() else "unknown")

app = Flask(__name__)

_secret = os.environ.get("SECRET_KEY")
if not _secret:
    # A per-process key keeps sessions working in a local trial; a deployment always sets one.
    logging.getLogger(__name__).warning("SECRET_KEY is not set; using a random per-process key")
    _secret = secrets.token_hex(32)
app.config["SECRET_KEY"] = _secret
app.config["GREETING"] = os.environ.get("APP_GREETING", "Hello, World!")
# No database configured: an in-memory one keeps `flask db upgrade` and the imports working, and
# /notes says there is nothing to store notes in.
app.config["DATABASE_CONFIGURED"] = bool(os.environ.get("DATABASE_URL"))
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL") or "sqlite://"
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}

db = SQLAlchemy(app)
MIGRATIONS = Path(__file__).with_name("migrations")


class Note(db.Model):
    __tablename__ = "notes"
    id = db.Column(db.Integer, primary_key=True)
    body = db.Column(db.String(500), nullable=False)
    created = db.Column(db.DateTime(timezone=True), nullable=False, server_default=func.now())

    def as_dict(self):
        return {"id": self.id, "body": self.body, "created": self.created.isoformat()}


@lru_cache(maxsize=None)
def migration_head():
    """The newest migration this release ships (what `flask db upgrade` brings the database to): the
    revision no other migration names as its down_revision. Read from the files, without Alembic."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r"^revision(?:\s*:[^=]*)?\s*=\s*[\"']([\w-]+)[\"']", text, re.M)
        parent = re.search(r"^down_revision(?:\s*:[^=]*)?\s*=\s*[\"']([\w-]+)[\"']", text, re.M)
        if revision:
            revisions.add(revision.group(1))
        if parent:
            parents.add(parent.group(1))
    return ",".join(sorted(revisions - parents)) or None


def database_revision():
    """The migration the database is at (None: never migrated)."""
    try:
        return db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - no table yet is an answer too
        db.session.rollback()
        return None


@app.after_request
def add_version_header(response):
    response.headers["X-App-Version"] = VERSION
    return response


@app.route("/")
def index():
    return f"{app.config['GREETING']} gigaflask {VERSION}\n"


@app.route("/healthz")
def healthz():
    if app.config["DATABASE_CONFIGURED"]:
        try:
            db.session.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - any failure means the database is unusable
            app.logger.error("healthz: the database does not answer: %s", error)
            return jsonify(status="error", version=VERSION, database="unreachable"), 503
        return jsonify(status="ok", version=VERSION, database="ok",
                       revision=database_revision(), head=migration_head())
    return jsonify(status="ok", version=VERSION)


@app.route("/notes", methods=["GET", "POST"])
def notes():
    """GET: the newest notes and how many there are. POST body=...: store one."""
    if not app.config["DATABASE_CONFIGURED"]:
        return jsonify(error="no database configured (DATABASE_URL is not set)"), 503
    if request.method == "POST":
        body = (request.form.get("body") or "").strip()
        if not body or len(body) > 500:
            abort(400, "body: 1 to 500 characters")
        note = Note(body=body)
        db.session.add(note)
        db.session.commit()
        return jsonify(note.as_dict()), 201
    newest = Note.query.order_by(Note.id.desc()).limit(50).all()
    return jsonify(count=Note.query.count(), notes=[note.as_dict() for note in newest])


@app.route("/whoami")
def whoami():
    """What the app sees of the request after the proxy: proves the forwarded headers arrive."""
    return jsonify(
        host=request.host,
        scheme=request.scheme,
        remote_addr=request.remote_addr,
        x_forwarded_for=request.headers.get("X-Forwarded-For"),
        x_real_ip=request.headers.get("X-Real-IP"),
        x_forwarded_proto=request.headers.get("X-Forwarded-Proto"),
    )
