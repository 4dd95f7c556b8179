"""What a reviewer reads: everything is unsealed in memory, per request, with the
reviewer's unlocked identity, and each unsealing is recorded in the audit chain by the
caller. Nothing unsealed is cached or written anywhere."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crypto
from store.blobs import read_blob, unpad_document
from store.models import (
    Attachment,
    Message,
    Note,
    Reviewer,
    SealedBlob,
    Statement,
    Testimony,
)


def unseal_json(session: Session, blob_id: int, identity: crypto.Identity) -> dict:
    blob = session.get(SealedBlob, blob_id)
    assert blob is not None
    return unpad_document(read_blob(session, blob, [identity]))


@dataclass
class AttachmentView:
    id: int
    kind: str
    received_on: dt.date
    metadata: dict
    has_working_copy: bool


@dataclass
class TestimonyView:
    testimony: Testimony
    details: dict
    statements: list[tuple[dt.date, str]]
    attachments: list[AttachmentView]
    notes: list[tuple[dt.date, str, str]]
    messages: list[tuple[dt.date, str, str]]
    has_contact: bool
    unreadable: list[str] = field(default_factory=list)


def _reviewer_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Reviewer.id, Reviewer.name)).all())


def read_testimony(session: Session, testimony: Testimony,
                   identity: crypto.Identity) -> TestimonyView:
    """Unseal a testimony for display. Items the reviewer has no stanza in are listed
    in ``unreadable`` rather than failing the page."""
    unreadable: list[str] = []

    def attempt(label: str, blob_id: int) -> dict | None:
        try:
            return unseal_json(session, blob_id, identity)
        except crypto.NoIdentityMatchError:
            unreadable.append(label)
            return None

    names = _reviewer_names(session)
    details = attempt("details", testimony.details_blob_id) or {}
    statements = []
    for statement in session.scalars(select(Statement).where(
            Statement.testimony_id == testimony.id).order_by(Statement.id)):
        doc = attempt("statement", statement.blob_id)
        if doc is not None:
            statements.append((statement.received_on, str(doc.get("text", ""))))
    attachments = []
    for attachment in session.scalars(select(Attachment).where(
            Attachment.testimony_id == testimony.id).order_by(Attachment.id)):
        blob = session.get(SealedBlob, attachment.metadata_blob_id)
        try:
            meta = json.loads(read_blob(session, blob, [identity]))  # type: ignore[arg-type]
        except crypto.NoIdentityMatchError:
            unreadable.append("file")
            continue
        attachments.append(AttachmentView(attachment.id, attachment.kind, attachment.received_on,
                                          meta, attachment.working_blob_id is not None))
    notes = []
    for note in session.scalars(select(Note).where(Note.testimony_id == testimony.id)
                                .order_by(Note.id)):
        doc = attempt("note", note.blob_id)
        if doc is not None:
            notes.append((note.written_on, names.get(note.reviewer_id, "?"),
                          str(doc.get("text", ""))))
    messages = []
    for message in session.scalars(select(Message).where(Message.testimony_id == testimony.id)
                                   .order_by(Message.id)):
        doc = attempt("reply", message.blob_id)
        if doc is not None:
            messages.append((message.sent_on, names.get(message.reviewer_id or 0, "?"),
                             str(doc.get("text", ""))))
    return TestimonyView(testimony, details, statements, attachments, notes, messages,
                         testimony.contact_blob_id is not None, unreadable)


@dataclass
class InboxRow:
    testimony: Testimony
    statements: int
    files: int
    messages: int


def _count(model, column):  # type: ignore[no-untyped-def]
    return (select(column, func.count().label("n")).group_by(column).subquery(model.__name__))


def inbox(session: Session, filters: dict[str, str], page: int, per_page: int = 50
          ) -> tuple[list[InboxRow], int]:
    """One page of testimonies, newest first, with counts; nothing is unsealed."""
    query = select(Testimony)
    if filters.get("status"):
        query = query.where(Testimony.status == filters["status"])
    if filters.get("place"):
        query = query.where(Testimony.place == filters["place"])
    if filters.get("language"):
        query = query.where(Testimony.language == filters["language"])
    if filters.get("relation"):
        query = query.where(Testimony.relation == filters["relation"])
    if filters.get("assigned") == "none":
        query = query.where(Testimony.assigned_to.is_(None))
    elif filters.get("assigned", "").isdigit():
        query = query.where(Testimony.assigned_to == int(filters["assigned"]))
    for name, op in (("from", "__ge__"), ("to", "__le__")):
        value = filters.get(name)
        if value:
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                continue
            query = query.where(getattr(Testimony.received_on, op)(day))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    statements = _count(Statement, Statement.testimony_id)
    files = _count(Attachment, Attachment.testimony_id)
    messages = _count(Message, Message.testimony_id)
    rows = session.execute(
        query.add_columns(func.coalesce(statements.c.n, 0), func.coalesce(files.c.n, 0),
                          func.coalesce(messages.c.n, 0))
        .outerjoin(statements, statements.c.testimony_id == Testimony.id)
        .outerjoin(files, files.c.testimony_id == Testimony.id)
        .outerjoin(messages, messages.c.testimony_id == Testimony.id)
        .order_by(Testimony.updated_on.desc(), Testimony.id.desc())
        .limit(per_page).offset(max(page - 1, 0) * per_page)
    ).all()
    return [InboxRow(t, s, f, m) for t, s, f, m in rows], total


@dataclass
class SearchHit:
    testimony_id: int
    snippet: str


def search(session: Session, identity: crypto.Identity, query: str,
           limit: int = 200) -> tuple[list[SearchHit], int]:
    """Case-insensitive search over statements, unsealed one by one in memory.

    There is no index at rest: an index would be plaintext (or a fingerprint of it).
    Returns the hits and how many statements were searched.
    """
    needle = query.casefold().strip()
    hits: dict[int, SearchHit] = {}
    searched = 0
    rows = session.execute(select(Statement.testimony_id, Statement.blob_id)
                           .order_by(Statement.testimony_id.desc(), Statement.id))
    for testimony_id, blob_id in rows:
        if testimony_id in hits:
            continue
        try:
            text = str(unseal_json(session, blob_id, identity).get("text", ""))
        except crypto.NoIdentityMatchError:
            continue
        searched += 1
        at = text.casefold().find(needle)
        if at >= 0:
            start = max(at - 80, 0)
            hits[testimony_id] = SearchHit(testimony_id, ("…" if start else "")
                                           + text[start:at + len(needle) + 80])
            if len(hits) >= limit:
                break
    return list(hits.values()), searched
