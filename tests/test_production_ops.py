"""``testimony purge`` and ``testimony check``, as an operator runs them.

Purge: testimony in a final status past the retention period is deleted with everything
that belongs to it (statements, files, replies, notes, their sealed items and chunks),
audited by count and ids; the rest stays readable; on SQLite the purged ciphertext is
gone from the database files. Check: a clean instance passes, and each kind of damage
(missing or short chunks, a cut payload, a broken header, a dropped recipient record, a
retired recipient, an orphan, an edited audit event, a flipped byte) is named and makes
the command fail."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select, text, update

from review import accounts
from store import audit
from store.blobs import read_item, seal_data, seal_document
from store.check import check
from store.db import Database
from store.instance import today
from store.models import (
    Attachment,
    AuditEvent,
    BlobChunk,
    BlobRecipient,
    Message,
    Note,
    Recipient,
    SealedBlob,
    Statement,
    Testimony,
    Witness,
)

from .conftest import FAST_ARGON2, ROOT, database_bytes
from .intake_helpers import jpeg, receipt_code, submit


def run(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        **FAST_ARGON2,
        "TESTIMONY_INSTANCE_PATH": str(settings.instance_path),
        **env,
    }
    full.pop("TESTIMONY_DATABASE_URL", None)
    if not settings.is_sqlite:
        full["TESTIMONY_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _three_testimonies(client, db):
    """Three invented testimonies with photos; returns their ids in order."""
    for n, colour in enumerate(("teal", "olive", "maroon")):
        response = submit(
            client,
            files=[("photo-%d.jpg" % n, jpeg(color=colour))],
            statement="Invented statement number %d about the bridge." % n,
            contact="invented contact %d" % n,
        )
        assert receipt_code(response)
    with db.sessions() as session:
        return list(session.scalars(select(Testimony.id).order_by(Testimony.id)))


def _age(db, testimony_id: int, status: str, days: int) -> None:
    with db.transaction() as session:
        session.execute(
            update(Testimony)
            .where(Testimony.id == testimony_id)
            .values(status=status, updated_on=today() - dt.timedelta(days=days))
        )


def _blobs_of(session, testimony_id: int) -> set[int]:
    item = session.get(Testimony, testimony_id)
    found = {item.details_blob_id, item.contact_blob_id}
    found |= set(
        session.scalars(select(Statement.blob_id).where(Statement.testimony_id == testimony_id))
    )
    for a in session.scalars(select(Attachment).where(Attachment.testimony_id == testimony_id)):
        found |= {a.original_blob_id, a.working_blob_id, a.metadata_blob_id}
    found |= set(
        session.scalars(select(Message.blob_id).where(Message.testimony_id == testimony_id))
    )
    found |= set(session.scalars(select(Note.blob_id).where(Note.testimony_id == testimony_id)))
    return found - {None}


def _reply_and_note(session, settings, testimony_id: int) -> None:
    reviewer = accounts.create_reviewer(
        session, settings, "Ivan Testov", "Invented long passphrase 77"
    ).reviewer
    item = session.get(Testimony, testimony_id)
    reply = seal_document(
        session, {"text": "Invented question"}, readers=[item.witness.reply_recipient]
    )
    session.add(
        Message(testimony_id=item.id, sent_on=today(), blob_id=reply.id, reviewer_id=reviewer.id)
    )
    note = seal_document(session, {"text": "Invented note"})
    session.add(
        Note(testimony_id=item.id, reviewer_id=reviewer.id, written_on=today(), blob_id=note.id)
    )


def test_purge_deletes_what_retention_says_and_keeps_the_rest(instance, intake_app, client):
    settings, recovery = instance
    db = intake_app.extensions["testimony_db"]
    old_withdrawn, recently_withdrawn, old_new = _three_testimonies(client, db)
    with db.transaction() as session:
        _reply_and_note(session, settings, old_withdrawn)
    _age(db, old_withdrawn, "withdrawn", 40)
    _age(db, recently_withdrawn, "withdrawn", 40)
    _age(db, old_new, "new", 400)
    with db.transaction() as session:  # a status change today restarts the count
        audit.append(
            session,
            "reviewer:Ivan Testov",
            "testimony.status",
            "testimony:%d" % recently_withdrawn,
            {"old": "new", "new": "withdrawn"},
        )
    with db.sessions() as session:
        doomed = _blobs_of(session, old_withdrawn)
        before = {
            t: session.scalar(select(func.count()).select_from(t))
            for t in (Testimony, Witness, Statement, Attachment, Message, Note, SealedBlob)
        }
    assert len(doomed) >= 7

    off = run(settings, "purge")
    assert off.returncode == 0 and "Retention is off" in off.stdout
    dry = run(settings, "purge", "--dry-run", TESTIMONY_RETENTION_DAYS="30")
    assert dry.returncode == 0, dry.stderr
    assert "Would delete 1 testimonies: %d" % old_withdrawn in dry.stdout
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Testimony)) == 3

    done = run(settings, "purge", TESTIMONY_RETENTION_DAYS="30")
    assert done.returncode == 0, done.stderr
    assert (
        "Deleted 1 testimonies (%d) and %d sealed items" % (old_withdrawn, len(doomed))
        in done.stdout
    )
    with db.sessions() as session:
        after = {t: session.scalar(select(func.count()).select_from(t)) for t in before}
        assert after[Testimony] == before[Testimony] - 1
        assert after[Witness] == before[Witness] - 1
        assert after[Message] == before[Message] - 1 and after[Note] == before[Note] - 1
        assert after[SealedBlob] == before[SealedBlob] - len(doomed)
        assert (
            session.scalar(
                select(func.count()).select_from(BlobChunk).where(BlobChunk.blob_id.in_(doomed))
            )
            == 0
        )
        assert (
            session.scalar(
                select(func.count())
                .select_from(BlobRecipient)
                .where(BlobRecipient.blob_id.in_(doomed))
            )
            == 0
        )
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "testimony.purge")
        ).one()
        details = json.loads(event.details)
        assert details["count"] == 1 and details["testimonies"] == [old_withdrawn]
        assert "bridge" not in event.details and "contact" not in event.details
        for kept in (recently_withdrawn, old_new):  # the rest still opens in full
            for blob_id in _blobs_of(session, kept):
                read_item(session, blob_id, [recovery])
        report = check(session, [recovery])
        assert report.ok, report.problems
    assert run(settings, "purge", TESTIMONY_RETENTION_DAYS="30").stdout.startswith("Deleted 0")


def test_a_witness_request_deletes_one_testimony_at_once(instance, intake_app, client):
    settings, _recovery = instance
    db = intake_app.extensions["testimony_db"]
    first, second, _third = _three_testimonies(client, db)
    done = run(settings, "purge", "--testimony", str(second), "--testimony", "9999")
    assert done.returncode == 0, done.stderr
    assert "Deleted 1 testimonies (%d)" % second in done.stdout
    assert "No testimony 9999" in done.stderr
    with db.sessions() as session:
        assert list(session.scalars(select(Testimony.id).order_by(Testimony.id))) == [first, _third]
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "testimony.purge")
        ).one()
        assert event.subject == "request"


@pytest.mark.sqlite
def test_purged_ciphertext_is_gone_from_the_sqlite_files(instance, intake_app, client):
    settings, _recovery = instance
    db = intake_app.extensions["testimony_db"]
    doomed, kept, _other = _three_testimonies(client, db)
    with db.sessions() as session:
        original = session.get(
            Attachment,
            session.scalar(select(Attachment.id).where(Attachment.testimony_id == doomed)),
        ).original_blob_id
        chunk = session.scalar(select(BlobChunk.data).where(BlobChunk.blob_id == original))
        header = session.get(SealedBlob, original).header
        kept_blob = session.get(Testimony, kept).details_blob_id
        kept_chunk = session.scalar(select(BlobChunk.data).where(BlobChunk.blob_id == kept_blob))
    pieces = [chunk[i : i + 48] for i in range(0, len(chunk) - 48, max(len(chunk) // 6, 48))]
    pieces.append(header[-40:])  # the header's MAC line
    at_rest = database_bytes(settings)
    assert all(p in at_rest for p in pieces)  # the control: the scan sees them before
    _age(db, doomed, "not_credible", 90)
    done = run(settings, "purge", TESTIMONY_RETENTION_DAYS="60")
    assert done.returncode == 0, done.stderr
    at_rest = database_bytes(settings)
    assert [p for p in pieces if p in at_rest] == []
    assert kept_chunk[:48] in at_rest


@pytest.mark.sqlite
def test_every_sqlite_connection_overwrites_what_it_deletes(instance):
    settings, _recovery = instance
    db = Database(settings)
    try:
        connections = [db.engine.connect() for _ in range(3)]
        try:
            assert [c.execute(text("PRAGMA secure_delete")).scalar() for c in connections] == [
                1,
                1,
                1,
            ]
        finally:
            for c in connections:
                c.close()
    finally:
        db.dispose()


# --- check -----------------------------------------------------------------------------------


def _damage_and_check(db, recovery, damage) -> list[str]:
    with db.transaction() as session:
        damage(session)
    with db.sessions() as session:
        return check(session, [recovery]).problems


@pytest.fixture
def stocked(instance, intake_app, client):
    settings, recovery = instance
    db = intake_app.extensions["testimony_db"]
    ids = _three_testimonies(client, db)
    with db.sessions() as session:
        clean = check(session, [recovery])
        assert clean.ok, clean.problems
        assert clean.opened == clean.items >= 15
        photo = session.get(
            Attachment,
            session.scalar(select(Attachment.id).where(Attachment.testimony_id == ids[0])),
        ).original_blob_id
        statement = session.scalar(
            select(Statement.blob_id).where(Statement.testimony_id == ids[1])
        )
        details = session.get(Testimony, ids[2]).details_blob_id
    return settings, recovery, db, photo, statement, details


def test_check_passes_on_a_sound_instance_and_fails_naming_each_problem(stocked):
    settings, recovery, db, photo, statement, details = stocked
    ok = run(settings, "check")
    assert ok.returncode == 0 and "check passed" in ok.stdout, ok.stdout + ok.stderr

    def drop_chunk(session):
        session.execute(
            BlobChunk.__table__.delete().where(BlobChunk.blob_id == statement, BlobChunk.seq == 0)
        )

    def shorten_chunk(session):
        data = session.scalar(select(BlobChunk.data).where(BlobChunk.blob_id == details))
        session.execute(
            update(BlobChunk).where(BlobChunk.blob_id == details).values(data=data[:-10])
        )

    problems = _damage_and_check(db, recovery, drop_chunk)
    assert "sealed item %d: 0 of its 1 chunks are stored" % statement in problems
    problems = _damage_and_check(db, recovery, shorten_chunk)
    assert any(p.startswith("sealed item %d: chunks hold" % details) for p in problems)
    cli = run(settings, "check")
    assert cli.returncode == 1
    assert "sealed item %d" % statement in cli.stdout and "check FAILED" in cli.stderr


def test_check_finds_a_cut_payload_a_broken_header_and_recipient_mismatches(stocked):
    _settings, recovery, db, photo, statement, details = stocked

    def cut(session):  # consistent records, but only the nonce and a few bytes remain
        data = session.scalar(select(BlobChunk.data).where(BlobChunk.blob_id == details))
        session.execute(
            update(BlobChunk).where(BlobChunk.blob_id == details).values(data=data[:20])
        )
        session.execute(update(SealedBlob).where(SealedBlob.id == details).values(payload_size=20))

    def garble(session):
        session.execute(
            update(SealedBlob)
            .where(SealedBlob.id == statement)
            .values(header=b"age-encryption.org/v1\n-> X25519 broken\n--- nomac\n")
        )

    def forget_recipient(session):
        recovery_id = session.scalar(select(Recipient.id).where(Recipient.kind == "recovery"))
        session.execute(
            BlobRecipient.__table__.delete().where(
                BlobRecipient.blob_id == photo, BlobRecipient.recipient_id == recovery_id
            )
        )

    problems = _damage_and_check(db, recovery, cut)
    assert any("sealed item %d: the payload (20 bytes)" % details in p for p in problems)
    problems = _damage_and_check(db, recovery, garble)
    assert any(
        p.startswith("sealed item %d: the age header does not parse" % statement) for p in problems
    )
    problems = _damage_and_check(db, recovery, forget_recipient)
    assert any(p.startswith("sealed item %d: the header's stanzas" % photo) for p in problems)
    assert "sealed item %d: not sealed to the active recovery key" % photo in problems


def test_check_finds_retired_recipients_orphans_audit_edits_and_flipped_bytes(stocked):
    settings, recovery, db, photo, statement, details = stocked
    with db.transaction() as session:
        person = accounts.create_reviewer(
            session, settings, "Aisha Primerova", "Invented long passphrase 78"
        )
        orphan = seal_data(session, b"invented leftover").id
        named = seal_data(session, b"invented item").id
        session.add(
            Note(testimony_id=1, reviewer_id=person.reviewer.id, written_on=today(), blob_id=named)
        )
        recipient_id = person.reviewer.recipient_id

    def retire(session):  # disabled by hand, without dropping its stanzas
        session.execute(update(Recipient).where(Recipient.id == recipient_id).values(active=False))

    def edit_audit(session):
        session.execute(
            update(AuditEvent).where(AuditEvent.seq == 2).values(details='{"edited": true}')
        )

    def flip(session):
        data = bytearray(session.scalar(select(BlobChunk.data).where(BlobChunk.blob_id == photo)))
        data[len(data) // 2] ^= 1
        session.execute(
            update(BlobChunk).where(BlobChunk.blob_id == photo).values(data=bytes(data))
        )

    problems = _damage_and_check(db, recovery, retire)
    assert any(
        p.startswith("sealed item %d: still names the retired recipient %d" % (named, recipient_id))
        for p in problems
    )
    assert "sealed item %d: nothing refers to it (an orphan)" % orphan in problems
    assert not any("sealed item %d: nothing refers" % named in p for p in problems)
    problems = _damage_and_check(db, recovery, edit_audit)
    assert "audit log: event 2: contents were altered (hash mismatch)" in problems
    problems = _damage_and_check(db, recovery, flip)
    assert any(p.startswith("sealed item %d: does not unseal" % photo) for p in problems)
    with db.sessions() as session:  # without an identity the flipped byte goes unseen
        shallow = check(session).problems
    assert not any("does not unseal" in p for p in shallow)
