"""Builders shared by the review-face tests: one instance with both faces, reviewers,
logins with TOTP codes on a controlled clock, invented photos, and database snapshots.

All names, passwords, statements and coordinates here are invented."""

from __future__ import annotations

import datetime as dt
import io
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
from PIL import Image
from sqlalchemy import func, select

import crypto
from review import accounts, sessions
from store import audit
from store.models import AuditEvent

from .conftest import database_bytes, make_settings, table_rows

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class Clock:
    """Stands in for :func:`review.sessions.now` so tests can move time forward."""

    def __init__(self) -> None:
        self.at = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)

    def timestamp(self) -> int:
        return int(self.at.replace(tzinfo=dt.UTC).timestamp())

    def totp(self, secret: str, offset: int = 0) -> str:
        """The code for the clock's time, or ``offset`` seconds from it."""
        return pyotp.TOTP(secret).at(self.timestamp() + offset)


@dataclass
class Person:
    name: str
    password: str
    id: int
    totp_secret: str
    identity: crypto.Identity


@dataclass
class Desk:
    settings: object
    recovery: crypto.Identity
    review_app: object
    intake_app: object
    clock: Clock
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def db(self):
        return self.review_app.extensions["testimony_db"]

    def add_reviewer(self, name: str, admin: bool = False) -> Person:
        password = "Invented %s passphrase 42" % name[::-1]
        with self.db.transaction() as session:
            created = accounts.create_reviewer(session, self.settings, name, password, admin)
            person = Person(
                name, password, created.reviewer.id, created.totp_secret, created.identity
            )
        self.people[name] = person
        return person

    def login(
        self, client, person: Person, password: str | None = None, code: str | None = None, **kwargs
    ):
        """Post the login form with a code for a fresh TOTP step (the clock moves on)."""
        self.clock.advance(seconds=31)
        data = {
            "name": person.name,
            "password": password or person.password,
            "code": code or self.clock.totp(person.totp_secret),
        }
        if self.review_app.config.get("WTF_CSRF_ENABLED", True):
            data["csrf_token"] = csrf_token(client.get("/login"))
        return client.post("/login", data=data, **kwargs)

    def logged_in(self, person: Person):
        client = self.review_app.test_client()
        response = self.login(client, person)
        assert response.status_code == 302, response.data
        return client

    def audit_actions(self, after: int = 0) -> list[str]:
        with self.db.sessions() as session:
            return list(
                session.scalars(
                    select(AuditEvent.action).where(AuditEvent.seq > after).order_by(AuditEvent.seq)
                )
            )

    def audit_head(self) -> int:
        with self.db.sessions() as session:
            return session.scalar(select(func.max(AuditEvent.seq))) or 0

    def audit_ok(self) -> bool:
        with self.db.sessions() as session:
            report = audit.verify(session)
        return report.ok and report.events > 0

    def database_bytes(self) -> bytes:
        """Every file of the SQLite database (main file, WAL and shared memory); on
        PostgreSQL every value of every row."""
        return database_bytes(self.settings)

    def dump(self) -> list[str]:
        """The whole database as SQL text, to show that nothing changed."""
        if not self.settings.is_sqlite:
            return [repr(item) for item in table_rows(self.settings).items()]
        connection = sqlite3.connect(Path(self.settings.instance_path) / "testimony.sqlite3")
        try:
            return list(connection.iterdump())
        finally:
            connection.close()

    def close(self) -> None:
        for app in (self.review_app, self.intake_app):
            app.extensions["testimony_db"].dispose()


def make_desk(tmp_path: Path, monkeypatch, **env: str) -> Desk:
    """A fresh instance (``testimony init``) with the review and intake apps on it, fast
    key derivations, and :func:`review.sessions.now` on a test clock."""
    from intake import create_app as create_intake
    from review import create_app as create_review
    from store import instance as instance_module

    settings = make_settings(tmp_path / "instance", TESTIMONY_SCRYPT_WORK_FACTOR="4", **env)
    created = instance_module.init(settings, out=lambda *_: None)
    recovery = crypto.parse_identities_file(created.read_text())[0]
    review_app = create_review(settings)
    review_app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    intake_app = create_intake(settings)
    intake_app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    clock = Clock()
    monkeypatch.setattr(sessions, "now", clock)
    return Desk(settings, recovery, review_app, intake_app, clock)


def csrf_token(response) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


def photo_with_exif(colour=(180, 40, 40)) -> bytes:
    """An invented JPEG with capture time, device and GPS position in its EXIF."""
    image = Image.new("RGB", (160, 120), colour)
    for x in range(0, 160, 20):
        image.paste((255 - colour[0], colour[1], 255 - colour[2]), (x, 0, x + 10, 120))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x0110] = "Witness Phone 1"
    exif.get_ifd(0x8769)[0x9003] = "2020:02:07 23:15:00"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (43.0, 12.0, 30.0)
    gps[3] = "E"
    gps[4] = (75.0, 6.0, 0.0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("review_session")
    return cookie.value if cookie else None
