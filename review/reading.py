"""What a reviewer reads: everything is unsealed in memory, per request, with the
reviewer's unlocked identity, and each unsealing is recorded in the audit chain by the
caller. Nothing unsealed is cached or written anywhere."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.orm import Session

import crypto
from store.blobs import open_document, read_item
from store.models import (
    Attachment,
    Incident,
    Message,
    Note,
    Reviewer,
    Statement,
    Testimony,
    TestimonyIncident,
    TestimonyViolation,
    ViolationType,
)


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


def _text(document: dict[str, Any]) -> str:
    return str(document.get("text", ""))


def read_testimony(
    session: Session, testimony: Testimony, identity: crypto.Identity
) -> TestimonyView:
    """Unseal a testimony for display. Items the reviewer has no stanza in are listed
    in ``unreadable`` rather than failing the page."""
    unreadable: list[str] = []

    def attempt(label: str, blob_id: int) -> dict | None:
        try:
            return open_document(session, blob_id, [identity])
        except crypto.NoIdentityMatchError:
            unreadable.append(label)
            return None

    names = _reviewer_names(session)
    details = attempt("details", testimony.details_blob_id) or {}
    statements = []
    for statement in session.scalars(
        select(Statement).where(Statement.testimony_id == testimony.id).order_by(Statement.id)
    ):
        doc = attempt("statement", statement.blob_id)
        if doc is not None:
            statements.append((statement.received_on, _text(doc)))
    attachments = []
    for attachment in session.scalars(
        select(Attachment).where(Attachment.testimony_id == testimony.id).order_by(Attachment.id)
    ):
        try:
            meta = json.loads(read_item(session, attachment.metadata_blob_id, [identity]))
        except crypto.NoIdentityMatchError:
            unreadable.append("file")
            continue
        attachments.append(
            AttachmentView(
                attachment.id,
                attachment.kind,
                attachment.received_on,
                meta,
                attachment.working_blob_id is not None,
            )
        )
    notes = []
    for note in session.scalars(
        select(Note).where(Note.testimony_id == testimony.id).order_by(Note.id)
    ):
        doc = attempt("note", note.blob_id)
        if doc is not None:
            notes.append((note.written_on, names.get(note.reviewer_id, "?"), _text(doc)))
    messages = []
    for message in testimony.messages:
        doc = attempt("reply", message.blob_id)
        if doc is not None:
            author = names.get(message.reviewer_id or 0, "?")
            messages.append((message.sent_on, author, _text(doc)))
    return TestimonyView(
        testimony,
        details,
        statements,
        attachments,
        notes,
        messages,
        testimony.contact_blob_id is not None,
        unreadable,
    )


@dataclass
class InboxRow:
    testimony: Testimony
    statements: int
    files: int
    messages: int
    links: int = 0


def _count_for_row(
    model: type[Statement] | type[Attachment] | type[Message] | type[TestimonyIncident],
) -> ScalarSelect[int]:
    """How many ``model`` rows the testimony of the outer row has (an index lookup)."""
    return (
        select(func.count())
        .select_from(model)
        .where(model.testimony_id == Testimony.id)
        .correlate(Testimony)
        .scalar_subquery()
    )


def inbox(
    session: Session, filters: dict[str, str], page: int, per_page: int = 50
) -> tuple[list[InboxRow], int]:
    """One page of testimonies, newest first, with counts; nothing is unsealed.

    The page is chosen first (an index scan in ``updated_on`` order) and the statements,
    files and messages are counted for its rows only, so a page costs the same however
    many testimonies there are.
    """
    conditions = []
    for name in ("status", "place", "language", "relation"):
        if filters.get(name):
            conditions.append(getattr(Testimony, name) == filters[name])
    if filters.get("assigned") == "none":
        conditions.append(Testimony.assigned_to.is_(None))
    elif re.fullmatch(r"[0-9]{1,9}", filters.get("assigned", "")):
        # ASCII digits only: "²".isdigit() is true, and int() refuses it.
        conditions.append(Testimony.assigned_to == int(filters["assigned"]))
    links: tuple[tuple[str, Any, Any], ...] = (
        ("incident", TestimonyIncident, Incident),
        ("tag", TestimonyViolation, ViolationType),
    )
    for name, link, target in links:
        if filters.get(name):
            linked = select(link.testimony_id).join(target).where(target.slug == filters[name])
            conditions.append(Testimony.id.in_(linked))
    for name, op in (("from", "__ge__"), ("to", "__le__")):
        value = filters.get(name)
        if value:
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                continue
            conditions.append(getattr(Testimony.received_on, op)(day))
    total = session.scalar(select(func.count()).select_from(Testimony).where(*conditions)) or 0
    order = (Testimony.updated_on.desc(), Testimony.id.desc())
    page_ids = (
        select(Testimony.id)
        .where(*conditions)
        .order_by(*order)
        .limit(per_page)
        .offset(max(page - 1, 0) * per_page)
        .subquery("page")
    )
    rows = session.execute(
        select(
            Testimony,
            _count_for_row(Statement),
            _count_for_row(Attachment),
            _count_for_row(Message),
            _count_for_row(TestimonyIncident),
        )
        .join(page_ids, page_ids.c.id == Testimony.id)
        .order_by(*order)
    ).all()
    return [InboxRow(t, s, f, m, n) for t, s, f, m, n in rows], total
