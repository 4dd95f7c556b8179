"""The database schema, shared by both faces.

What is stored in the clear is only what reviewers must sort and count by without
unsealing anything: status, the chosen place from the gazetteer, the witness's relation to
events, consent, the interface language, the day of receipt. Everything a witness wrote or
uploaded, their contact details, reviewer notes and replies live in :class:`SealedBlob`
rows as age files. Times are kept to the day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Recipient(Base):
    """An age public key that sealed items are sealed to.

    ``kind`` says whose: ``reviewer`` and ``recovery`` keys are the instance's readers,
    and every new item is sealed to each of them while ``active``; a ``witness`` key is a
    witness's reply key (derived from their receipt), a reader only of the items sealed
    for that witness (replies), never ``active`` (nothing new is sealed to it unasked),
    registered like the others so that sharing, disabling, checks and key upgrades treat
    every stanza of a header alike.
    """

    __tablename__ = "recipient"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_key: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "recovery" | "reviewer" | "witness"
    label: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_on: Mapped[dt.date] = mapped_column(Date)


class SealedBlob(Base):
    """One age file: its header apart (so sharing rewrites only it) and its payload in
    chunks (so one transaction holds a testimony and all its files)."""

    __tablename__ = "sealed_blob"
    id: Mapped[int] = mapped_column(primary_key=True)
    header: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[list[BlobChunk]] = relationship(
        back_populates="blob",
        cascade="all, delete-orphan",
        order_by="BlobChunk.seq",
        lazy="raise",
        passive_deletes=True,
    )


class BlobChunk(Base):
    __tablename__ = "blob_chunk"
    blob_id: Mapped[int] = mapped_column(
        ForeignKey("sealed_blob.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    blob: Mapped[SealedBlob] = relationship(back_populates="chunks")


class BlobRecipient(Base):
    """Which registered recipients a blob's header currently names."""

    __tablename__ = "blob_recipient"
    blob_id: Mapped[int] = mapped_column(
        ForeignKey("sealed_blob.id", ondelete="CASCADE"), primary_key=True
    )
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id"), primary_key=True)


class Witness(Base):
    """The person behind a receipt: only an Argon2id hash of the code and the recipient
    replies are sealed to (its private key is derived from the code, never stored).

    The reply recipient is one row for the witness's whole life: when their key moves
    to a post-quantum one, the row's key changes and every reply is resealed to it."""

    __tablename__ = "witness"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Deferred: the intake's PostgreSQL role may not read it (store/roles.py), so loading
    # a witness row must not select it.
    receipt_hash: Mapped[str] = mapped_column(String(128), unique=True, deferred=True)
    reply_recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id"), unique=True)
    reply_recipient: Mapped[Recipient] = relationship()
    testimony: Mapped[Testimony] = relationship(back_populates="witness")

    @hybrid_property
    def reply_public_key(self) -> str:
        """The witness's reply key (``age1…`` or ``age1pq1…``)."""
        return self.reply_recipient.public_key

    @reply_public_key.inplace.expression
    @classmethod
    def _reply_public_key(cls) -> ColumnElement[str]:
        return (
            select(Recipient.public_key)
            .where(Recipient.id == cls.reply_recipient_id)
            .scalar_subquery()
        )


class Testimony(Base):
    __tablename__ = "testimony"
    id: Mapped[int] = mapped_column(primary_key=True)
    witness_id: Mapped[int] = mapped_column(ForeignKey("witness.id"), unique=True)
    received_on: Mapped[dt.date] = mapped_column(Date, index=True)
    updated_on: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    language: Mapped[str] = mapped_column(String(8))
    place: Mapped[str] = mapped_column(String(40))  # gazetteer code or "other"
    relation: Mapped[str] = mapped_column(String(20))
    consent: Mapped[str] = mapped_column(String(20))  # "counts" | "quotes"
    details_blob_id: Mapped[int] = mapped_column(ForeignKey("sealed_blob.id"))
    contact_blob_id: Mapped[int | None] = mapped_column(ForeignKey("sealed_blob.id"))
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("reviewer.id"), index=True)

    witness: Mapped[Witness] = relationship(back_populates="testimony")
    statements: Mapped[list[Statement]] = relationship(
        back_populates="testimony", order_by="Statement.id"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="testimony", order_by="Attachment.id"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="testimony", order_by="Message.id"
    )


class Statement(Base):
    """A sealed, size-padded statement: the first one or a later addition."""

    __tablename__ = "statement"
    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(ForeignKey("testimony.id"), index=True)
    received_on: Mapped[dt.date] = mapped_column(Date)
    blob_id: Mapped[int] = mapped_column(ForeignKey("sealed_blob.id"))
    testimony: Mapped[Testimony] = relationship(back_populates="statements")


class Attachment(Base):
    """An uploaded file: the original bit for bit, a metadata-stripped working copy for
    images, and a metadata record (SHA-256, EXIF, declared name) — each sealed."""

    __tablename__ = "attachment"
    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(ForeignKey("testimony.id"), index=True)
    received_on: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(10))  # image | audio | video | pdf
    original_blob_id: Mapped[int] = mapped_column(ForeignKey("sealed_blob.id"))
    working_blob_id: Mapped[int | None] = mapped_column(ForeignKey("sealed_blob.id"))
    metadata_blob_id: Mapped[int] = mapped_column(ForeignKey("sealed_blob.id"))
    testimony: Mapped[Testimony] = relationship(back_populates="attachments")


class Message(Base):
    """A reviewer's question or answer to the witness, sealed to the witness's reply key
    and to the reviewers."""

    __tablename__ = "message"
    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(ForeignKey("testimony.id"), index=True)
    sent_on: Mapped[dt.date] = mapped_column(Date)
    blob_id: Mapped[int] = mapped_column(ForeignKey("sealed_blob.id"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("reviewer.id"))
    testimony: Mapped[Testimony] = relationship(back_populates="messages")


class Reviewer(Base):
    """A reviewer account. The private key exists here only sealed to the password (an
    age scrypt file); the TOTP secret only sealed to that key."""

    __tablename__ = "reviewer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    identity_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    totp_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id"))
    created_on: Mapped[dt.date] = mapped_column(Date)
    recipient: Mapped[Recipient] = relationship()


class ReviewSession(Base):
    """The server's half of a split-knowledge session: the reviewer's identity sealed
    under a key that only the reviewer's browser holds. Keyed by a hash of the session id."""

    __tablename__ = "review_session"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(
        ForeignKey("reviewer.id", ondelete="CASCADE"), index=True
    )
    sealed_identity: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime)


class Note(Base):
    """A reviewer's note on a testimony, sealed to all reviewers."""

    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(ForeignKey("testimony.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewer.id"))
    written_on: Mapped[dt.date] = mapped_column(Date)
    blob_id: Mapped[int] = mapped_column(ForeignKey("sealed_blob.id"))


class Place(Base):
    """A gazetteer entry: names in the three languages, district, coordinates."""

    __tablename__ = "place"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    names: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"en": …, "ru": …, "kk": …}
    district: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20), default="village")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)


class ViolationType(Base):
    """An entry of the hierarchical violation vocabulary."""

    __tablename__ = "violation_type"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("violation_type.id"))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)


class Incident(Base):
    """A documented event (HURIDOCS: event), with its acts (violation types), figures and
    sources. Public facts: stored in the clear."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[dict[str, Any]] = mapped_column(JSON)
    start: Mapped[str] = mapped_column(String(20), index=True)  # ISO date, datetime or month
    end: Mapped[str | None] = mapped_column(String(20))
    precision: Mapped[str] = mapped_column(String(12))  # exact | approximate | day | month
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    figures_note: Mapped[str] = mapped_column(Text, default="")
    places: Mapped[list[Place]] = relationship(secondary="incident_place", order_by="Place.slug")
    violation_types: Mapped[list[ViolationType]] = relationship(
        secondary="incident_violation", order_by="ViolationType.slug"
    )
    sources: Mapped[list[Source]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", order_by="Source.id"
    )


class IncidentPlace(Base):
    __tablename__ = "incident_place"
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )
    place_id: Mapped[int] = mapped_column(ForeignKey("place.id"), primary_key=True)


class IncidentViolation(Base):
    __tablename__ = "incident_violation"
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )
    violation_type_id: Mapped[int] = mapped_column(
        ForeignKey("violation_type.id"), primary_key=True
    )


class Source(Base):
    __tablename__ = "source"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(500))
    publisher: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    date: Mapped[str | None] = mapped_column(String(20))
    incident: Mapped[Incident] = relationship(back_populates="sources")


class IncidentRelation(Base):
    """``incident`` is caused_by / part_of / follows ``related``."""

    __tablename__ = "incident_relation"
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )
    related_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )
    relation: Mapped[str] = mapped_column(String(20))


class TestimonyIncident(Base):
    """A reviewer's link from a testimony to an incident it speaks about. The supporting
    passage of the statement is sealed like the statement itself."""

    __tablename__ = "testimony_incident"
    __table_args__ = (UniqueConstraint("testimony_id", "incident_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(ForeignKey("testimony.id"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))  # eyewitness | victim | relative | hearsay
    confidence: Mapped[str] = mapped_column(String(10))  # low | medium | high
    passage_blob_id: Mapped[int | None] = mapped_column(ForeignKey("sealed_blob.id"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("reviewer.id"))
    linked_on: Mapped[dt.date] = mapped_column(Date)


class TestimonyViolation(Base):
    """A violation type a reviewer tagged on a testimony."""

    __tablename__ = "testimony_violation"
    testimony_id: Mapped[int] = mapped_column(ForeignKey("testimony.id"), primary_key=True)
    violation_type_id: Mapped[int] = mapped_column(
        ForeignKey("violation_type.id"), primary_key=True, index=True
    )


class AuditEvent(Base):
    """One link of the append-only, hash-chained audit log."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(120))
    details: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class InstanceValue(Base):
    """Per-instance constants that are not secret, such as the receipt salt."""

    __tablename__ = "instance_value"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class Excerpt(Base):
    """A passage of a statement a reviewer edited for publication, sealed like a note
    (text, and the reasons for any personal-data finding left unmasked). Only an
    ``approved`` excerpt of a testimony whose witness consented to quotes leaves the
    system, in an export, under an id fresh to that export."""

    __tablename__ = "excerpt"
    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(ForeignKey("testimony.id"), index=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("sealed_blob.id"))
    status: Mapped[str] = mapped_column(String(12), default="draft", index=True)
    written_by: Mapped[int | None] = mapped_column(ForeignKey("reviewer.id"))
    written_on: Mapped[dt.date] = mapped_column(Date)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("reviewer.id"))
    approved_on: Mapped[dt.date | None] = mapped_column(Date)
