"""Concurrency cannot undo security state: logins that run at the same moment, each in a
transaction of its own, leave the failure counter, the lock and the last used TOTP step
exactly as some one-after-the-other order of the same logins would.

Every race is made real: the password check waits on a barrier until every login of the
race has read the reviewer's row and is inside :func:`review.accounts.authenticate`. The
races run on PostgreSQL (skipped without ``TEST_DATABASE_URL``) and on SQLite. Everything
here is invented."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from review import accounts, sessions
from store import instance as instance_module
from store.db import Database
from store.models import AuditEvent, Reviewer

from .conftest import make_settings
from .review_helpers import Clock

NAME = "alma"
PASSWORD = "Invented amla passphrase 42"
WRONG = "Invented wrong passphrase"


@dataclass
class Desk:
    settings: object
    db: Database
    clock: Clock
    totp_secret: str
    monkeypatch: pytest.MonkeyPatch

    def attempt(self, password: str, code: str) -> bool:
        """One login in its own transaction, committed whatever the outcome, as the login
        page does; True if it succeeded."""
        with self.db.transaction() as session:
            try:
                accounts.authenticate(session, self.settings, NAME, password, code)
            except accounts.LoginFailed:
                return False
            return True

    def code(self) -> str:
        """A code for a TOTP step never used yet (the clock moves on)."""
        self.clock.advance(seconds=31)
        return self.clock.totp(self.totp_secret)

    def race(self, *attempts: tuple[str, str]) -> list[bool]:
        """Run the logins at once: none checks its password before all have begun."""
        barrier = threading.Barrier(len(attempts), timeout=30)
        verify = argon2.PasswordHasher.verify

        def verify_together(hasher, hash, password):
            barrier.wait()
            return verify(hasher, hash, password)

        with self.monkeypatch.context() as patch:
            patch.setattr(argon2.PasswordHasher, "verify", verify_together)
            with ThreadPoolExecutor(len(attempts)) as pool:
                futures = [pool.submit(self.attempt, *a) for a in attempts]
                return [f.result() for f in futures]

    def state(self) -> tuple[int, bool, int]:
        """(failed logins, locked now, last used TOTP step)."""
        with self.db.sessions() as session:
            reviewer = session.scalar(select(Reviewer).where(Reviewer.name == NAME))
            assert reviewer is not None
            locked = reviewer.locked_until is not None and reviewer.locked_until > self.clock()
            return reviewer.failed_logins, locked, reviewer.last_totp_step

    def failure_counts(self) -> list[int]:
        with self.db.sessions() as session:
            rows = session.scalars(
                select(AuditEvent.details)
                .where(AuditEvent.action == "login.failed")
                .order_by(AuditEvent.seq)
            )
            return [json.loads(details)["failures"] for details in rows]


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.sqlite), "postgresql"])
def desk(request, tmp_path, monkeypatch):
    server = database = None
    url = None
    if request.param == "postgresql":
        server_url = request.getfixturevalue("postgres_url")
        database = "testimony_login_race_%s" % uuid.uuid4().hex[:10]
        server = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.execute(text('CREATE DATABASE "%s"' % database))
        url = make_url(server_url).set(database=database).render_as_string(hide_password=False)
    settings = make_settings(tmp_path / "instance", url, TESTIMONY_SCRYPT_WORK_FACTOR="4")
    instance_module.init(settings, out=lambda *_: None)
    db = Database(settings)
    clock = Clock()
    monkeypatch.setattr(sessions, "now", clock)
    with db.transaction() as session:
        created = accounts.create_reviewer(session, settings, NAME, PASSWORD)
    try:
        yield Desk(settings, db, clock, created.totp_secret, monkeypatch)
    finally:
        db.dispose()
        if server is not None:
            with server.connect() as conn:
                conn.execute(text('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % database))
            server.dispose()


def test_one_code_used_by_two_logins_at_once_lets_exactly_one_in(desk):
    code = desk.code()
    outcomes = desk.race((PASSWORD, code), (PASSWORD, code))
    assert sorted(outcomes) == [False, True], outcomes
    failed, locked, step = desk.state()
    assert (failed, locked) == (1, False)  # the replay counts as a failure, as it would after
    assert step == desk.clock.timestamp() // 30
    assert desk.attempt(PASSWORD, code) is False  # and the code stays used


def test_simultaneous_wrong_passwords_each_count_and_lock_the_account(desk):
    attempts = [(WRONG, desk.code()) for _ in range(accounts.LOCK_AFTER)]
    assert desk.race(*attempts) == [False] * accounts.LOCK_AFTER
    failed, locked, _step = desk.state()
    assert (failed, locked) == (accounts.LOCK_AFTER, True)
    # Each failure was counted on top of the one before, none on a stale count.
    assert sorted(desk.failure_counts()) == list(range(1, accounts.LOCK_AFTER + 1))
    assert desk.attempt(PASSWORD, desk.code()) is False  # locked, even to the right password


def test_more_wrong_passwords_at_once_than_the_lock_allows_count_as_one_by_one(desk):
    """One by one, the attempts after the fifth meet a locked account and are not counted;
    at once, no more are counted either, and the lock is the first one's (a minute)."""
    attempts = [(WRONG, desk.code()) for _ in range(accounts.LOCK_AFTER + 2)]
    assert desk.race(*attempts) == [False] * len(attempts)
    assert desk.state()[:2] == (accounts.LOCK_AFTER, True)
    desk.clock.advance(seconds=61)
    assert desk.state()[:2] == (accounts.LOCK_AFTER, False)


def test_a_success_racing_a_failure_never_undoes_the_failure(desk):
    for _ in range(accounts.LOCK_AFTER - 1):
        assert desk.attempt(WRONG, desk.code()) is False
    assert desk.state()[:2] == (accounts.LOCK_AFTER - 1, False)
    right, wrong = desk.race((PASSWORD, desk.code()), (WRONG, desk.code()))
    assert wrong is False
    failed, locked, _step = desk.state()
    # Either the success came first (the failure then counts from nothing), or the failure
    # did (the fifth: the account is locked and the success refused). Nothing else.
    assert (right, failed, locked) in {
        (True, 1, False),
        (False, accounts.LOCK_AFTER, True),
    }, (right, failed, locked)
