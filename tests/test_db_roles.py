"""The intake's PostgreSQL role (``testimony db roles``): the witness face works end to end
under it (submit with a photo, follow up, read a reply, add more, a reply key moved to a
post-quantum key), while reading reviewer tables, deleting testimony or changing what was
stored fails with a permission error. On a database and role of the test's own."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

import crypto
from store.audit import _digest as audit_digest
from store.blobs import seal_document
from store.check import check
from store.db import Database
from store.instance import init, today
from store.models import Attachment, Message, Statement, Testimony, Witness

from .conftest import FAST_ARGON2, ROOT, make_settings
from .intake_helpers import jpeg, receipt_code, submit

PASSWORD = "invented-intake-password-42"
REPLY = "Invented question from the reviewers: which street was it?"


@pytest.fixture
def owned(postgres_url, tmp_path):
    """(owner URL, role name) of a fresh database; both dropped afterwards."""
    name = "testimony_roles_%s" % uuid.uuid4().hex[:10]
    role = "intake_%s" % uuid.uuid4().hex[:10]
    server = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text('CREATE DATABASE "%s"' % name))
    url = make_url(postgres_url).set(database=name)
    yield url.render_as_string(hide_password=False), role
    with server.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name))
        conn.execute(text("DROP ROLE IF EXISTS %s" % role))
    server.dispose()


def _testimony_command(owner_url: str, instance, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **FAST_ARGON2,
        "TESTIMONY_INSTANCE_PATH": str(instance),
        "TESTIMONY_DATABASE_URL": owner_url,
        "INVENTED_INTAKE_PASSWORD": PASSWORD,
    }
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _as_role(owner_url: str, role: str) -> str:
    return (
        make_url(owner_url)
        .set(username=role, password=PASSWORD)
        .render_as_string(hide_password=False)
    )


def _intake(settings):
    from intake import create_app

    app = create_app(settings)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return app


def test_the_intake_role_adds_testimony_and_can_do_nothing_else(owned, tmp_path):
    owner_url, role = owned
    settings = make_settings(tmp_path / "instance", owner_url, TESTIMONY_RECIPIENT_KEYS="x25519")
    created = init(settings, out=lambda *_: None)
    recovery = crypto.parse_identities_file(created.read_text())

    printed = _testimony_command(
        owner_url, settings.instance_path, "db", "roles", "--intake-role", role
    )
    assert printed.returncode == 0, printed.stderr
    assert "GRANT INSERT ON" in printed.stdout and "ROW LEVEL SECURITY" in printed.stdout
    assert '"reviewer"' not in printed.stdout and PASSWORD not in printed.stdout
    # As docs/deploy.md has it: the printed SQL read into psql, then the same again with
    # --apply and a password (which also shows that applying twice is harmless).
    psql = shutil.which("psql")
    assert psql, "psql is missing (apt-get install postgresql-client)"
    plain_owner = (
        make_url(owner_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    read = subprocess.run(
        [psql, "-v", "ON_ERROR_STOP=1", "-q", "-d", plain_owner],
        input=printed.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    applied = _testimony_command(
        owner_url,
        settings.instance_path,
        "db",
        "roles",
        "--apply",
        "--intake-role",
        role,
        "--password-env",
        "INVENTED_INTAKE_PASSWORD",
    )
    assert applied.returncode == 0, applied.stderr
    role_url = _as_role(owner_url, role)

    # The witness face, connected as the intake role: a testimony with a photo.
    intake = _intake(settings.with_changes(database_url=role_url))
    try:
        sent = submit(intake.test_client(), files=[("invented.jpg", jpeg())])
        assert sent.status_code == 200, sent.data[:800]
        code = receipt_code(sent)
        assert code
    finally:
        intake.extensions["testimony_db"].dispose()

    # The reviewers (owner) answer the witness.
    owner = Database(settings)
    with owner.transaction() as session:
        item = session.scalars(select(Testimony)).one()
        blob = seal_document(session, {"text": REPLY}, readers=[item.witness.reply_recipient])
        session.add(Message(testimony_id=item.id, sent_on=today(), blob_id=blob.id))
        testimony_id = item.id

    # The witness comes back to a post-quantum instance: the reply key moves (a header
    # rewrite under the role's narrow rights), the reply reads, and more is added.
    intake = _intake(settings.with_changes(database_url=role_url, recipient_keys="pq"))
    try:
        client = intake.test_client()
        page = client.post("/en/receipt/", data={"receipt": code})
        assert page.status_code == 200, page.data[:800]
        assert REPLY in page.get_data(as_text=True)
        added = client.post(
            "/en/receipt/add",
            data={
                "receipt": code,
                "statement": "Invented addition: it was the street by the mill.",
                "files": [(__import__("io").BytesIO(jpeg(color="navy")), "second.jpg")],
            },
            content_type="multipart/form-data",
        )
        assert added.status_code == 200, added.data[:800]
    finally:
        intake.extensions["testimony_db"].dispose()

    with owner.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Statement)) == 2
        assert session.scalar(select(func.count()).select_from(Attachment)) == 2
        assert session.scalar(select(Witness.reply_public_key)).startswith("age1pq1")
        report = check(session, recovery)
        assert report.ok, report.problems
        statement_blob = session.scalar(select(Statement.blob_id).order_by(Statement.id))
        lookup_hash = session.scalar(select(Witness.receipt_hash))
    owner.dispose()

    # What the role must not do.
    denied = [
        "SELECT * FROM reviewer",
        "SELECT * FROM review_session",
        "SELECT * FROM note",
        "SELECT * FROM testimony_incident",
        "SELECT * FROM testimony_violation",
        "SELECT * FROM excerpt",
        "SELECT details, actor FROM audit_event",
        # A witness's lookup hash would open their testimony (testimony.receipt).
        "SELECT receipt_hash FROM witness",
        "SELECT * FROM witness",
        "DELETE FROM testimony",
        "DELETE FROM statement",
        "DELETE FROM sealed_blob",
        "DELETE FROM blob_chunk",
        "DELETE FROM witness",
        "UPDATE statement SET received_on = received_on",
        "UPDATE testimony SET status = 'withdrawn'",
        "UPDATE blob_chunk SET data = ''::bytea",
        "UPDATE attachment SET kind = 'pdf'",
        "INSERT INTO note (testimony_id, reviewer_id, written_on, blob_id) VALUES (1, 1, now(), 1)",
        "TRUNCATE audit_event",
    ]
    plain = make_url(role_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        for statement in denied:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # Row-level security: a stored item's header and recipients stay as they are.
        header = conn.execute(
            "SELECT header FROM sealed_blob WHERE id = %s", (statement_blob,)
        ).fetchone()[0]
        cursor = conn.execute(
            "UPDATE sealed_blob SET header = 'x'::bytea WHERE id = %s", (statement_blob,)
        )
        assert cursor.rowcount == 0
        cursor = conn.execute("DELETE FROM blob_recipient WHERE blob_id = %s", (statement_blob,))
        assert cursor.rowcount == 0
        assert (
            conn.execute(
                "SELECT header FROM sealed_blob WHERE id = %s", (statement_blob,)
            ).fetchone()[0]
            == header
        )
        # What is committed stays as it is: no chunk appended to another witness's item,
        # no statement or file slipped into a testimony without its receipt (nor with a
        # wrong one), no audit event in anyone's name but a witness's, nor with a time.
        for refused in _attacks(conn, testimony_id, statement_blob):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(refused)
        assert conn.execute("SELECT count(*) FROM statement").fetchone()[0] == 2
        # The receipt look-up answers a hash with an id, never a hash with anything.
        assert conn.execute("SELECT testimony_by_receipt(%s)", (lookup_hash,)).fetchone() == (
            testimony_id,
        )
        assert conn.execute("SELECT testimony_by_receipt(%s)", ("0" * 64,)).fetchone() == (None,)
        assert conn.execute("SELECT testimony_by_receipt('')").fetchone() == (None,)
        # The one update a witness's addition needs does work (the control).
        cursor = conn.execute(
            "UPDATE testimony SET updated_on = updated_on WHERE id = %s", (testimony_id,)
        )
        assert cursor.rowcount == 1


def _forged_event(conn, actor: str, at: str) -> str:
    """An audit event that links correctly to the chain's head, as an attacker would."""
    seq, prev = conn.execute(
        "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    when = dt.datetime.fromisoformat(at)
    digest = audit_digest(prev, seq + 1, when, actor, "testimony.read", "testimony:1", "{}")
    return (
        "INSERT INTO audit_event (seq, at, actor, action, subject, details, prev_hash, hash) "
        "VALUES (%d, '%s', '%s', 'testimony.read', 'testimony:1', '{}', '%s', '%s')"
        % (seq + 1, at, actor, prev, digest)
    )


def _attacks(conn, testimony_id: int, blob_id: int):
    """The changes a taken-over intake would make to what is already committed."""
    yield "INSERT INTO blob_chunk (blob_id, seq, data) VALUES (%d, 9999, 'x'::bytea)" % blob_id
    yield "INSERT INTO blob_recipient (blob_id, recipient_id) SELECT %d, max(id) FROM recipient" % (
        blob_id
    )
    yield (
        "INSERT INTO statement (testimony_id, received_on, blob_id) "
        "VALUES (%d, current_date, %d)" % (testimony_id, blob_id)
    )
    yield (
        "INSERT INTO attachment (testimony_id, received_on, kind, original_blob_id, "
        "metadata_blob_id) VALUES (%d, current_date, 'image', %d, %d)"
        % (testimony_id, blob_id, blob_id)
    )
    # A receipt that is not this testimony's opens nothing either.
    conn.execute("SELECT set_config('testimony.receipt', %s, false)", ("0" * 64,))
    yield (
        "INSERT INTO statement (testimony_id, received_on, blob_id) "
        "VALUES (%d, current_date, %d)" % (testimony_id, blob_id)
    )
    conn.execute("RESET testimony.receipt")
    yield _forged_event(conn, "reviewer:invented-reviewer", "%s 00:00:00" % dt.date.today())
    yield _forged_event(conn, "witness", "%s 13:37:00" % dt.date.today())


def test_roles_are_refused_on_sqlite(tmp_path):
    instance = tmp_path / "instance"
    env = {**os.environ, **FAST_ARGON2, "TESTIMONY_INSTANCE_PATH": str(instance)}
    env.pop("TESTIMONY_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "review.cli", "db", "roles"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "PostgreSQL" in done.stderr
