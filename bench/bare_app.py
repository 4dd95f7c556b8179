"""The reference for bench/intake.py: a bare Flask app that takes the same form and keeps it
in plaintext SQLite.

It does what any minimal intake would do and nothing that Testimony adds: no sealing, no
encrypted upload spool (Werkzeug's default spooling), no content sniffing or photo
processing, no receipt hashing, no rate limits, no CSRF check, no audit log. The form
page carries a token field only so that clients fetch a page first, as with the real
intake. Storage uses the same SQLite durability as the intake (WAL, synchronous=FULL,
one transaction per submission), so the ratio measures what the security work costs,
not a weaker commit.

    BARE_DB=/tmp/bare.sqlite3 gunicorn --chdir bench bare_app:app
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from typing import Any

from flask import Flask, request

app = Flask(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submission (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    statement TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload (
    id INTEGER PRIMARY KEY,
    submission_id INTEGER NOT NULL REFERENCES submission(id),
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL
);
"""

FORM_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Notes</title></head><body>
<form method="post" enctype="multipart/form-data" action="/ru/testimony/">
<input id="csrf_token" name="csrf_token" type="hidden" value="%s">
<textarea id="statement" name="statement"></textarea>
<input id="files" name="files" type="file" multiple>
<button type="submit">Send</button>
</form></body></html>
"""

RECEIPT_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Notes</title></head><body>
<p class="code">%s</p></body></html>
"""

_connection: sqlite3.Connection | None = None


def _db() -> sqlite3.Connection:
    """One connection per worker process, opened after the fork."""
    global _connection
    if _connection is None:
        _connection = sqlite3.connect(os.environ["BARE_DB"], timeout=30, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
            _connection.execute("PRAGMA " + pragma)
        _connection.executescript(_SCHEMA)
    return _connection


def _code() -> str:
    digits = str(secrets.randbelow(10**20)).zfill(20)
    return " ".join(digits[i : i + 4] for i in range(0, 20, 4))


@app.route("/ru/", methods=["GET"])
def welcome() -> Any:
    return "<!doctype html><p>Notes</p>"


@app.route("/ru/testimony/", methods=["GET", "POST"])
def testimony() -> Any:
    if request.method == "GET":
        return FORM_PAGE % secrets.token_hex(32)
    form = request.form.to_dict()
    form.pop("csrf_token", None)
    statement = form.pop("statement", "")
    code = _code()
    db = _db()
    db.execute("BEGIN IMMEDIATE")
    try:
        cursor = db.execute(
            "INSERT INTO submission (code, statement, fields) VALUES (?, ?, ?)",
            (code, statement, json.dumps(form, ensure_ascii=False)),
        )
        for storage in request.files.getlist("files"):
            if not storage.filename:
                continue
            db.execute(
                "INSERT INTO upload (submission_id, name, type, data) VALUES (?, ?, ?, ?)",
                (cursor.lastrowid, storage.filename, storage.mimetype or "", storage.read()),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return RECEIPT_PAGE % code
