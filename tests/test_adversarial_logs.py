"""No secret and no testimony in the logs, at any level.

Both faces run with the root logger, Werkzeug, Flask and SQLAlchemy at DEBUG and the
SQLAlchemy engine echoing every statement, as an operator chasing a problem might set
them, Pillow's included (at DEBUG Pillow quotes EXIF tags; the apps' filters drop those
records; real gunicorn servers: test_adversarial_logs_gunicorn.py). Canary text goes through
everything a witness and a reviewer do: a submission with a contact, a file name and a
photo's EXIF, a follow-up, a login, reading, a note, a reply, a search, revealing the
contact, a download, logging out. Then every captured record is scanned for the
canaries, the receipt, the password, the TOTP code, the session cookie, the reviewer's
key, the client address and the User-Agent. Everything is invented.
"""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image

from .adversarial_helpers import seeded_desk
from .intake_helpers import receipt_code
from .review_helpers import session_cookie

CANARY = "Invented canary Syvanov-7731"
ADDRESS = "203.0.113.41"
AGENT = "InventedCanaryBrowser/4.2"
ENVIRON = {"REMOTE_ADDR": ADDRESS, "HTTP_USER_AGENT": AGENT}


def _photo() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = CANARY + " camera"
    out = io.BytesIO()
    Image.new("RGB", (32, 24), "navy").save(out, "JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture
def loud(caplog):
    """Every logger at DEBUG, the SQL echoed, all of it captured."""
    caplog.set_level(logging.DEBUG)
    names = [
        "werkzeug",
        "flask.app",
        "PIL",
        "sqlalchemy",
        "sqlalchemy.engine",
        "sqlalchemy.pool",
        "intake",
        "review",
        "store",
        "crypto",
        "flask_limiter",
    ]
    previous = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


def test_nothing_secret_reaches_the_logs_at_debug(tmp_path, monkeypatch, loud):
    seeded = seeded_desk(tmp_path, monkeypatch)
    desk = seeded.desk
    try:
        for app in (desk.intake_app, desk.review_app):
            app.extensions["testimony_db"].engine.echo = "debug"
            for name in ("werkzeug", "flask.app"):  # the apps turn Werkzeug down again
                logging.getLogger(name).setLevel(logging.DEBUG)
        intake = desk.intake_app.test_client()
        response = intake.post(
            "/ru/testimony/",
            environ_base=ENVIRON,
            content_type="multipart/form-data",
            data={
                "statement": CANARY + " statement",
                "relation": "saw",
                "consent": "quotes",
                "contact": CANARY + " contact",
                "when_approx": CANARY + " night",
                "files": [(io.BytesIO(_photo()), CANARY + ".jpg")],
            },
        )
        receipt = receipt_code(response)
        assert receipt
        assert (
            intake.post(
                "/ru/receipt/add",
                environ_base=ENVIRON,
                data={"receipt": receipt, "statement": CANARY + " addition"},
            ).status_code
            == 200
        )

        admin = seeded.admin
        review = desk.review_app.test_client()
        desk.clock.advance(seconds=31)
        code = desk.clock.totp(admin.totp_secret)
        login = review.post(
            "/login",
            environ_base=ENVIRON,
            data={"name": admin.name, "password": admin.password, "code": code},
        )
        assert login.status_code == 302
        cookie = session_cookie(review)
        for path, data in (
            ("/testimony/2/note", {"note-text": CANARY + " note"}),
            ("/testimony/2/reply", {"reply-text": CANARY + " reply"}),
            ("/testimony/2/contact", {}),
            ("/testimony/file/2/original", {}),
        ):
            assert review.post(path, data=data, environ_base=ENVIRON).status_code in (200, 302)
        assert review.get("/testimony/2", environ_base=ENVIRON).status_code == 200
        assert (
            review.get(
                "/search/", query_string={"q": "Syvanov-7731"}, environ_base=ENVIRON
            ).status_code
            == 200
        )
        thread = intake.post("/ru/receipt/", data={"receipt": receipt}, environ_base=ENVIRON)
        assert CANARY + " reply" in thread.get_data(as_text=True)
        assert review.post("/logout", environ_base=ENVIRON).status_code == 302
    finally:
        desk.close()

    text = "\n".join(record.getMessage() for record in loud.records)
    assert "SELECT" in text and len(loud.records) > 100  # the logs were really on
    digits = receipt.replace(" ", "")
    secrets = {
        "canary": "Syvanov-7731",
        "receipt": receipt,
        "receipt digits": digits,
        "password": admin.password,
        "TOTP code": code,
        "session cookie": cookie,
        "session id": cookie.split(".")[0],
        "session key": cookie.split(".")[1],
        "reviewer key": str(admin.identity),
        "address": ADDRESS,
        "User-Agent": AGENT,
    }
    found = {what for what, secret in secrets.items() if secret in text}
    assert not found, found
