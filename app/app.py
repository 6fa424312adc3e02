"""The tutorial's minimal Flask app, grown just enough to be tested through a real deployment.

Run it the tutorial's way: ``gunicorn -b localhost:8000 -w 4 app:app``.
"""
import logging
import os
import secrets
from pathlib import Path

from flask import Flask, jsonify, request

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


@app.after_request
def add_version_header(response):
    response.headers["X-App-Version"] = VERSION
    return response


@app.route("/")
def index():
    return f"{app.config['GREETING']} gigaflask {VERSION}\n"


@app.route("/healthz")
def healthz():
    return jsonify(status="ok", version=VERSION)


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
