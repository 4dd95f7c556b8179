"""Excerpts: passages of a statement that a reviewer edits for publication.

Threat: a quote that identifies its witness, or quotes from a witness who never agreed
to be quoted. Guarantees: an excerpt can be made only from a testimony whose witness
consented to quotes; its text and the reasons for any finding left unmasked are sealed
like a note (no plaintext at rest, nothing of them in the audit log, which records only
kinds and counts); it is approved only while every personal-data finding of
:mod:`.pii` is masked or overridden with a reason; any edit after approval returns it
to draft; an export takes only approved excerpts of testimonies that still consent and
are not withdrawn.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.blobs import (
    discard,
    open_document,
    open_sealed_document,
    read_sealed_many,
    seal_document,
)
from store.instance import today
from store.models import (
    Excerpt,
    Incident,
    Reviewer,
    Testimony,
    TestimonyIncident,
)

from . import pii

QUOTABLE = "quotes"
DRAFT, APPROVED = "draft", "approved"
MAX_CHARS = 5000
MAX_REASON = 300


class ExcerptError(ValueError):
    """Why an action on an excerpt was refused; ``code`` names a message for the page."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class ExcerptView:
    excerpt: Excerpt
    text: str
    overrides: list[dict[str, str]]
    findings: list[pii.Finding] = field(default_factory=list)

    @property
    def overridden(self) -> set[str]:
        return {o["key"] for o in self.overrides}

    @property
    def unresolved(self) -> list[pii.Finding]:
        return [f for f in self.findings if f.key not in self.overridden]


_names_lock = threading.Lock()
_incident_names: tuple[str, list[str]] = ("", [])


def known_names(session: Session) -> list[str]:
    """Names recorded in the instance: reviewers', and people named in incident texts
    (found by the model once per change of the catalogue, per process)."""
    global _incident_names
    names = list(session.scalars(select(Reviewer.name)))
    texts: list[str] = []
    for title, description in session.execute(select(Incident.title, Incident.description)):
        for value in (title or {}, description or {}):
            texts.extend(str(v) for v in value.values())
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    with _names_lock:
        if _incident_names[0] != digest:
            found = sorted({name for text in texts for name in pii.person_names(text)})
            _incident_names = (digest, found)
        return names + _incident_names[1]


def read(
    session: Session, excerpt: Excerpt, identity: crypto.Identity, check: bool = True
) -> ExcerptView:
    document = open_document(session, excerpt.blob_id, [identity])
    text = str(document.get("text", ""))
    view = ExcerptView(excerpt, text, list(document.get("overrides", [])))
    if check:
        view.findings = pii.find(text, known_names(session))
    return view


def _store(session: Session, excerpt: Excerpt, text: str, overrides: list[dict[str, str]]) -> None:
    old = excerpt.blob_id
    blob = seal_document(session, {"text": text, "overrides": overrides})
    excerpt.blob_id = blob.id
    session.flush()
    if old:
        discard(session, [old])


def _checked_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise ExcerptError("empty")
    if len(text) > MAX_CHARS:
        raise ExcerptError("long")
    return text


def create(
    session: Session, testimony: Testimony, reviewer_id: int, actor: str, text: str
) -> Excerpt:
    if testimony.consent != QUOTABLE:
        raise ExcerptError("consent")
    excerpt = Excerpt(
        testimony_id=testimony.id,
        blob_id=0,
        status=DRAFT,
        written_by=reviewer_id,
        written_on=today(),
    )
    _store(session, excerpt, _checked_text(text), [])
    session.add(excerpt)
    session.flush()
    audit.append(
        session, actor, "excerpt.create", "testimony:%d" % testimony.id, {"excerpt": excerpt.id}
    )
    return excerpt


def _changed(
    session: Session,
    excerpt: Excerpt,
    reviewer_id: int,
    actor: str,
    action: str,
    text: str,
    overrides: list[dict[str, str]],
    **details: object,
) -> None:
    was = excerpt.status
    _store(session, excerpt, text, overrides)
    excerpt.status, excerpt.approved_by, excerpt.approved_on = DRAFT, None, None
    excerpt.written_by, excerpt.written_on = reviewer_id, today()
    audit.append(session, actor, action, "excerpt:%d" % excerpt.id, {**details, "was": was})


def edit(
    session: Session,
    excerpt: Excerpt,
    identity: crypto.Identity,
    reviewer_id: int,
    actor: str,
    text: str,
) -> None:
    view = read(session, excerpt, identity, check=False)
    text = _checked_text(text)
    if text == view.text:
        return
    findings = {f.key for f in pii.find(text, known_names(session))}
    kept = [o for o in view.overrides if o["key"] in findings]
    _changed(session, excerpt, reviewer_id, actor, "excerpt.edit", text, kept)


def mask(
    session: Session,
    excerpt: Excerpt,
    identity: crypto.Identity,
    reviewer_id: int,
    actor: str,
    language: str,
    keys: set[str] | None = None,
) -> int:
    """Replace unresolved findings (all, or those of ``keys``) by placeholders."""
    view = read(session, excerpt, identity)
    chosen = [f for f in view.unresolved if keys is None or f.key in keys]
    if not chosen:
        return 0
    _changed(
        session,
        excerpt,
        reviewer_id,
        actor,
        "excerpt.mask",
        pii.mask(view.text, chosen, language),
        view.overrides,
        kinds=dict(Counter(f.kind for f in chosen)),
    )
    return len(chosen)


def override(
    session: Session,
    excerpt: Excerpt,
    identity: crypto.Identity,
    reviewer_id: int,
    actor: str,
    key: str,
    reason: str,
) -> None:
    """Keep a finding as written, for a reason (sealed with the excerpt; the audit log
    records only the kind)."""
    reason = reason.strip()[:MAX_REASON]
    if not reason:
        raise ExcerptError("reason")
    view = read(session, excerpt, identity)
    finding = next((f for f in view.unresolved if f.key == key), None)
    if finding is None:
        raise ExcerptError("finding")
    overrides = [*view.overrides, {"key": key, "kind": finding.kind, "reason": reason}]
    _changed(
        session,
        excerpt,
        reviewer_id,
        actor,
        "excerpt.override",
        view.text,
        overrides,
        kind=finding.kind,
    )


def approve(
    session: Session, excerpt: Excerpt, identity: crypto.Identity, reviewer_id: int, actor: str
) -> None:
    testimony = session.get(Testimony, excerpt.testimony_id)
    assert testimony is not None
    if testimony.consent != QUOTABLE:
        raise ExcerptError("consent")
    view = read(session, excerpt, identity)
    if view.unresolved:
        raise ExcerptError("unresolved")
    excerpt.status, excerpt.approved_by, excerpt.approved_on = APPROVED, reviewer_id, today()
    audit.append(
        session,
        actor,
        "excerpt.approve",
        "excerpt:%d" % excerpt.id,
        {"overrides": dict(Counter(o["kind"] for o in view.overrides))},
    )


def remove(session: Session, excerpt: Excerpt, actor: str) -> None:
    audit.append(
        session,
        actor,
        "excerpt.delete",
        "excerpt:%d" % excerpt.id,
        {"testimony": excerpt.testimony_id, "was": excerpt.status},
    )
    blob = excerpt.blob_id
    session.delete(excerpt)
    session.flush()
    discard(session, [blob])


def of_testimony(session: Session, testimony_id: int) -> list[Excerpt]:
    return list(
        session.scalars(
            select(Excerpt).where(Excerpt.testimony_id == testimony_id).order_by(Excerpt.id)
        )
    )


@dataclass
class Publishable:
    language: str
    incidents: list[str]
    text: str


def publishable(
    session: Session, identity: crypto.Identity, scope: list[Any], incidents: list[str]
) -> Iterator[Publishable]:
    """Approved excerpts of testimonies in ``scope`` that consent to quotes, unsealed in
    memory one at a time (one streamed query). ``incidents`` limits the incident slugs
    given with each (all linked ones when empty)."""
    quotable = select(Testimony.id).where(*scope, Testimony.consent == QUOTABLE)
    where = [Excerpt.status == APPROVED, Excerpt.testimony_id.in_(quotable)]
    languages = dict(
        session.execute(
            select(Testimony.id, Testimony.language)
            .join(Excerpt, Excerpt.testimony_id == Testimony.id)
            .where(*where)
        ).all()
    )
    links: dict[int, list[str]] = {}
    link_query = (
        select(TestimonyIncident.testimony_id, Incident.slug, Incident.start)
        .join(Incident, Incident.id == TestimonyIncident.incident_id)
        .join(Excerpt, Excerpt.testimony_id == TestimonyIncident.testimony_id)
        .where(*where)
        .order_by(Incident.start, Incident.slug)
        .distinct()
    )
    if incidents:
        link_query = link_query.where(Incident.slug.in_(incidents))
    for testimony_id, slug, _start in session.execute(link_query):
        links.setdefault(testimony_id, []).append(slug)
    for (testimony_id, _excerpt_id), sealed, first in read_sealed_many(
        session,
        Excerpt.blob_id,
        [Excerpt.testimony_id, Excerpt.id],
        where=where,
        order_by=[Excerpt.id],
        reader=identity,
    ):
        document = open_sealed_document(sealed, identity, first)
        yield Publishable(
            languages.get(testimony_id, ""),
            links.get(testimony_id, []),
            str(document.get("text", "")),
        )
