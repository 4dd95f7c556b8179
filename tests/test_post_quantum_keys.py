"""Post-quantum sealing in the store: new instances use hybrid keys everywhere, and an
existing X25519 instance moves to them by header rewrites with nothing unreadable at any
step."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pyotp
from sqlalchemy import select

import crypto
from intake import create_app as create_intake
from review import create_app as create_review
from review.accounts import create_reviewer, unseal_identity
from store.blobs import header_of, read_item
from store.db import Database
from store.instance import init
from store.models import AuditEvent, Message, Recipient, Reviewer, SealedBlob, Witness

from .conftest import database_env, make_settings
from .intake_helpers import receipt_code, submit

PASSWORD = "invented passphrase 7"


def _apps(settings):
    intake = create_intake(settings)
    intake.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    review = create_review(settings)
    review.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return intake, review


def _stanza_types(session):
    return {
        blob.id: [s.type for s in header_of(blob).stanzas]
        for blob in session.scalars(select(SealedBlob))
    }


def _login(review, name, secret, step=0):
    """Log in; ``step`` picks a later TOTP code, as a used one is refused."""
    client = review.test_client()
    code = pyotp.TOTP(secret).at(time.time() + 30 * step)
    response = client.post("/login", data={"name": name, "password": PASSWORD, "code": code})
    assert response.status_code == 302
    return client


def test_new_instances_seal_with_hybrid_keys_only(tmp_path):
    settings = make_settings(tmp_path / "i", TESTIMONY_SCRYPT_WORK_FACTOR="4")
    assert settings.recipient_keys == "pq"
    recovery_file = init(settings, out=lambda *_: None)
    assert "AGE-SECRET-KEY-PQ-1" in recovery_file.read_text()
    db = Database(settings)
    with db.transaction() as session:
        created = create_reviewer(session, settings, "amina", PASSWORD)
    assert str(created.identity).startswith("AGE-SECRET-KEY-PQ-1")
    intake, review = _apps(settings)
    code = receipt_code(submit(intake.test_client(), files=[("v.mp3", b"ID3" + bytes(900))]))
    client = _login(review, "amina", created.totp_secret)
    assert (
        client.post("/testimony/1/reply", data={"reply-text": "Invented question"}).status_code
        == 302
    )
    with db.sessions() as session:
        assert session.scalar(select(Witness.reply_public_key)).startswith("age1pq1")
        for blob_id, types in _stanza_types(session).items():
            assert types and set(types) == {"mlkem768x25519"}, (blob_id, types)
    page = intake.test_client().post("/en/receipt/", data={"receipt": code})
    assert "Invented question" in page.data.decode()


def test_an_x25519_instance_moves_to_hybrid_keys_without_losing_anything(tmp_path):
    classic = make_settings(
        tmp_path / "i", TESTIMONY_RECIPIENT_KEYS="x25519", TESTIMONY_SCRYPT_WORK_FACTOR="4"
    )
    recovery_file = init(classic, out=lambda *_: None)
    old_recovery = crypto.parse_identities_file(recovery_file.read_text())
    db = Database(classic)
    with db.transaction() as session:
        created = create_reviewer(session, classic, "amina", PASSWORD)
    old_reviewer = created.identity
    intake, review = _apps(classic)
    code = receipt_code(submit(intake.test_client(), statement="Invented account of a night"))
    _login(review, "amina", created.totp_secret).post(
        "/testimony/1/reply", data={"reply-text": "Invented question about the night"}
    )
    with db.sessions() as session:
        before = _stanza_types(session)
        chunks_before = {
            b.id: read_item(session, b.id, old_recovery)
            for b in session.scalars(select(SealedBlob))
        }
    assert all(set(t) == {"X25519"} for t in before.values())

    # Step 1: the operator moves the recovery key (reviewers keep their X25519 keys).
    pq = classic.with_changes(recipient_keys="pq")
    new_file = tmp_path / "new-recovery.txt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "review.cli",
            "keys",
            "upgrade",
            "--identity",
            str(recovery_file),
            "--out",
            str(new_file),
        ],
        env={
            "TESTIMONY_INSTANCE_PATH": str(classic.instance_path),
            "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
            "TESTIMONY_ARGON2_TIME_COST": "1",
            "PATH": "/usr/bin:/bin",
            **database_env(classic.instance_path),
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "amina" in result.stdout  # told whose keys move at next login
    new_recovery = crypto.parse_identities_file(new_file.read_text())
    with db.sessions() as session:
        for blob in session.scalars(select(SealedBlob)):
            assert read_item(session, blob.id, new_recovery) == chunks_before[blob.id]
            assert read_item(session, blob.id, [old_reviewer]) == chunks_before[blob.id]
            try:
                read_item(session, blob.id, old_recovery)
                raise AssertionError("the old recovery key still opens blob %d" % blob.id)
            except crypto.NoIdentityMatchError:
                pass

    # Step 2: the reviewer logs in on the post-quantum instance; their key moves.
    _intake_pq, review_pq = _apps(pq)
    client = _login(review_pq, "amina", created.totp_secret, step=1)
    assert "Invented account of a night" in client.get("/testimony/1").data.decode()
    with db.sessions() as session:
        reviewer = session.scalars(select(Reviewer)).one()
        assert reviewer.recipient.public_key.startswith("age1pq1")
        new_identity = unseal_identity(reviewer.identity_sealed, PASSWORD)
        for blob in session.scalars(select(SealedBlob)):
            assert read_item(session, blob.id, [new_identity]) == chunks_before[blob.id]
            try:
                read_item(session, blob.id, [old_reviewer])
                raise AssertionError("the old reviewer key still opens blob %d" % blob.id)
            except crypto.NoIdentityMatchError:
                pass
        message_blob = session.scalar(select(Message.blob_id))
        types = _stanza_types(session)
        assert all("X25519" not in t for b, t in types.items() if b != message_blob)
        assert types[message_blob].count("X25519") == 1  # the witness's, until they return
        assert not session.scalars(
            select(Recipient).where(
                Recipient.active.is_(True), ~Recipient.public_key.startswith("age1pq1")
            )
        ).all()

    # Step 3: the witness comes back with the receipt; their reply key moves too.
    page = _intake_pq.test_client().post("/en/receipt/", data={"receipt": code})
    assert "Invented question about the night" in page.data.decode()
    with db.sessions() as session:
        assert session.scalar(select(Witness.reply_public_key)).startswith("age1pq1")
        assert all(set(t) == {"mlkem768x25519"} for t in _stanza_types(session).values())
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {
        "recovery.key_add",
        "recovery.key_drop",
        "reviewer.key_upgrade",
        "witness.key_upgrade",
    } <= actions
    again = _intake_pq.test_client().post("/en/receipt/", data={"receipt": code})
    assert re.search("Invented question about the night", again.data.decode())
