"""Turning a witness's form into sealed rows, all in one transaction.

Nothing here can read what it writes: the intake holds only public keys. A receipt code
is returned only after the transaction committed, so a witness never holds a receipt for
a testimony that is not durably stored in full.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crypto
from store import audit, receipts
from store.blobs import (
    BlobWriter,
    NoRecipientsError,
    active_recipients,
    open_document,
    reseal,
    seal_data,
    seal_document,
)
from store.db import Database
from store.instance import receipt_kdf, today
from store.models import Attachment, Statement, Testimony
from store.roles import RECEIPT_SETTING
from store.settings import Settings

from . import filetypes, images
from .spool import SealedSpool

_COPY_BLOCK = 1024 * 1024
_PILLOW_CANNOT_DECODE = {"image/heic", "image/heif"}


class NotReady(RuntimeError):
    """No active recipient: the intake must refuse rather than store the unreadable."""


class UploadRefused(ValueError):
    def __init__(self, reason: str, name: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name


@dataclass
class ReceivedFile:
    """An upload that passed its checks, waiting to be sealed."""

    spool: SealedSpool
    declared_name: str
    declared_type: str
    type: filetypes.FileType
    image: images.ProcessedImage | None = None

    def metadata(self) -> dict[str, object]:
        meta: dict[str, object] = {
            "sha256": self.spool.sha256,
            "size": self.spool.stored,
            "detected_type": self.type.mime,
            "declared_name": self.declared_name,
            "declared_type": self.declared_type,
        }
        if self.image:
            meta.update(
                width=self.image.width,
                height=self.image.height,
                exif=self.image.exif,
                working_copy=self.image.working_mime,
            )
        return meta


def check_upload(spool: SealedSpool, declared_name: str, declared_type: str) -> ReceivedFile:
    """Decide what an upload is from its content; raise :class:`UploadRefused` if unusable."""
    if spool.too_large:
        raise UploadRefused("file_too_large", declared_name)
    if spool.stored == 0:
        raise UploadRefused("file_empty", declared_name)
    kind = filetypes.detect(spool.head)
    if kind is None:
        raise UploadRefused("file_type", declared_name)
    received = ReceivedFile(spool, declared_name[:255], declared_type[:100], kind)
    if kind.kind == "image" and kind.mime not in _PILLOW_CANNOT_DECODE:
        spool.seek(0)
        try:
            received.image = images.process(spool.read())
        except images.ImageRefused as exc:
            raise UploadRefused(exc.reason, declared_name) from None
    return received


@dataclass
class Submission:
    statement: str
    when_date: dt.date | None
    when_approx: str
    place: str
    place_other: str
    relation: str
    consent: str
    contact: str
    language: str
    files: list[ReceivedFile] = field(default_factory=list)

    def details(self) -> dict[str, object]:
        return {
            "when_date": self.when_date.isoformat() if self.when_date else None,
            "when_approx": self.when_approx,
            "place": self.place,
            "place_other": self.place_other,
            "relation": self.relation,
            "consent": self.consent,
            "language": self.language,
        }


def is_ready(db: Database) -> bool:
    with db.sessions() as session:
        return bool(active_recipients(session))


def _seal_file(session: Session, testimony: Testimony, received: ReceivedFile) -> Attachment:
    received.spool.seek(0)
    with BlobWriter(session) as original:
        while block := received.spool.read(_COPY_BLOCK):
            original.write(block)
    working = None
    if received.image and received.image.working_copy is not None:
        working = seal_data(session, received.image.working_copy)
    meta = seal_data(session, json.dumps(received.metadata(), ensure_ascii=False).encode())
    attachment = Attachment(
        testimony_id=testimony.id,
        received_on=today(),
        kind=received.type.kind,
        original_blob_id=original.blob.id,
        working_blob_id=working.id if working else None,
        metadata_blob_id=meta.id,
    )
    session.add(attachment)
    return attachment


def _kdf(db: Database) -> receipts.ReceiptKdf:
    """The receipt derivation never changes for an instance: read once per database."""
    if db.receipt_kdf is None:
        with db.sessions() as session:
            db.receipt_kdf = receipt_kdf(session)
    return db.receipt_kdf


def receive(db: Database, settings: Settings, submission: Submission) -> str:
    """Store a new testimony; return its receipt code once everything is committed."""
    code = receipts.new_code()
    keys = receipts.ReceiptKeys(settings, _kdf(db), receipts.normalize(code) or "")
    try:
        with db.transaction() as session:
            witness = receipts.new_witness(
                session, keys.lookup_hash, str(keys.reply_recipient), today()
            )
            details = seal_document(session, submission.details())
            contact = None
            if submission.contact.strip():
                contact = seal_document(session, {"contact": submission.contact})
            testimony = Testimony(
                witness_id=witness.id,
                received_on=today(),
                updated_on=today(),
                status="new",
                language=submission.language,
                place=submission.place or "unknown",
                relation=submission.relation,
                consent=submission.consent,
                details_blob_id=details.id,
                contact_blob_id=contact.id if contact else None,
            )
            session.add(testimony)
            session.flush()
            _add_statement(session, testimony, submission.statement)
            for received in submission.files:
                _seal_file(session, testimony, received)
            _witness_event(
                session, "testimony.received", testimony, {"attachments": len(submission.files)}
            )
    except NoRecipientsError:
        raise NotReady("no active recipient") from None
    return code


def _witness_event(
    session: Session, action: str, testimony: Testimony, details: dict[str, object]
) -> None:
    """A witness's action in the audit chain: kept to the day, never the time."""
    audit.append(session, "witness", action, "testimony:%d" % testimony.id, details, day_only=True)


def _add_statement(session: Session, testimony: Testimony, text: str) -> None:
    if not text.strip():
        return
    blob = seal_document(session, {"text": text})
    session.add(Statement(testimony_id=testimony.id, received_on=today(), blob_id=blob.id))


@dataclass
class FollowUp:
    """What a witness sees with their receipt: their testimony's day and the replies."""

    testimony_id: int
    received_on: dt.date
    statements: int
    attachments: int
    messages: list[tuple[dt.date, str]]


def find(db: Database, settings: Settings, code: str) -> tuple[receipts.ReceiptKeys, int] | None:
    """The receipt's keys and testimony id, or None. Always costs one Argon2id run."""
    digits = receipts.normalize(code) or "0" * receipts.DIGITS
    keys = receipts.ReceiptKeys(settings, _kdf(db), digits)
    with db.sessions() as session:
        testimony_id = receipts.testimony_by_receipt(session, keys.lookup_hash)
    if testimony_id is None or receipts.normalize(code) is None:
        return None
    return keys, testimony_id


def upgrade_reply_key(db: Database, keys: receipts.ReceiptKeys, testimony_id: int) -> bool:
    """On a post-quantum instance, move a witness's X25519 reply key to a hybrid one the
    first time they come back (the code is needed, so it cannot happen earlier): every
    reply's header is rewritten, in one transaction, for the reviewers and the new key."""
    new = keys.reply_identity
    with db.transaction() as session:
        testimony = session.get(Testimony, testimony_id)
        assert testimony is not None
        reply = testimony.witness.reply_recipient
        if not new.post_quantum or crypto.key_kind(reply.public_key) == "mlkem768x25519":
            return False
        old = keys.identity_for(reply.public_key)
        # The witness's recipient row keeps its id and takes the new key; each reply is
        # then resealed to its registered readers, which now include that new key.
        reply.public_key = str(new.recipient)
        session.flush()
        for message in testimony.messages:
            # A key upgrade: the reviewers' keys may not all be post-quantum yet.
            reseal(session, message.blob_id, [old], allow_mixed=True)
        _witness_event(
            session, "witness.key_upgrade", testimony, {"replies": len(testimony.messages)}
        )
    return True


def follow_up(db: Database, keys: receipts.ReceiptKeys, testimony_id: int) -> FollowUp:
    """Unseal, in memory only, the replies sealed to this witness's receipt key."""
    with db.sessions() as session:
        testimony = session.get(Testimony, testimony_id)
        assert testimony is not None
        identity = keys.identity_for(testimony.witness.reply_public_key)
        messages = []
        for message in testimony.messages:
            document = open_document(session, message.blob_id, [identity])
            messages.append((message.sent_on, str(document.get("text", ""))))
        return FollowUp(
            testimony_id=testimony.id,
            received_on=testimony.received_on,
            statements=len(testimony.statements),
            attachments=len(testimony.attachments),
            messages=messages,
        )


def add(
    db: Database,
    testimony_id: int,
    text: str,
    files: list[ReceivedFile],
    *,
    keys: receipts.ReceiptKeys,
) -> None:
    """Add a statement and files to an existing testimony, in one transaction.

    On PostgreSQL the receipt's lookup hash is shown to the database first (a setting
    local to the transaction): the intake role's row-level security adds statements and
    files to a testimony only with its receipt (see store/roles.py)."""
    try:
        with db.transaction() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(select(func.set_config(RECEIPT_SETTING, keys.lookup_hash, True)))
            testimony = session.get(Testimony, testimony_id)
            assert testimony is not None
            _add_statement(session, testimony, text)
            for received in files:
                _seal_file(session, testimony, received)
            testimony.updated_on = today()
            _witness_event(
                session,
                "testimony.added",
                testimony,
                {"statement": bool(text.strip()), "attachments": len(files)},
            )
    except NoRecipientsError:
        raise NotReady("no active recipient") from None
