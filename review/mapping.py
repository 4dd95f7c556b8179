"""Mapping testimony to documented incidents: links with the witness's role and the
reviewer's confidence, violation tags, the sealed supporting passage, and what an
incident page shows (linked testimonies on a timeline by when the witness says things
happened, and the corroboration count)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from store.blobs import open_document
from store.incidents import corroboration
from store.models import (
    Incident,
    Statement,
    Testimony,
    TestimonyIncident,
    TestimonyViolation,
    ViolationType,
)

ROLE_LABELS = {
    "eyewitness": _l("Eyewitness"),
    "victim": _l("Victim"),
    "relative": _l("Relative of a victim"),
    "hearsay": _l("Hearsay"),
}
CONFIDENCE_LABELS = {"low": _l("Low"), "medium": _l("Medium"), "high": _l("High")}
_SPACE = re.compile(r"\s+")


def normalize_space(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def passage_in_statements(
    session: Session, testimony: Testimony, identity: crypto.Identity, passage: str
) -> bool:
    """Whether ``passage`` (spacing aside) is a part of one of the testimony's statements."""
    wanted = normalize_space(passage).casefold()
    for blob_id in session.scalars(
        select(Statement.blob_id).where(Statement.testimony_id == testimony.id)
    ):
        text = str(open_document(session, blob_id, [identity]).get("text", ""))
        if wanted in normalize_space(text).casefold():
            return True
    return False


@dataclass
class LinkView:
    link: TestimonyIncident
    incident: Incident
    passage: str | None


def links_of(session: Session, testimony: Testimony, identity: crypto.Identity) -> list[LinkView]:
    rows = session.execute(
        select(TestimonyIncident, Incident)
        .join(Incident)
        .where(TestimonyIncident.testimony_id == testimony.id)
        .order_by(Incident.start)
    ).all()
    views = []
    for link, incident in rows:
        passage = None
        if link.passage_blob_id:
            try:
                passage = str(open_document(session, link.passage_blob_id, [identity]).get("text"))
            except crypto.NoIdentityMatchError:
                passage = None
        views.append(LinkView(link, incident, passage))
    return views


def tags_of(session: Session, testimony_id: int) -> set[int]:
    return set(
        session.scalars(
            select(TestimonyViolation.violation_type_id).where(
                TestimonyViolation.testimony_id == testimony_id
            )
        )
    )


def vocabulary_tree(session: Session) -> list[tuple[ViolationType, list[ViolationType]]]:
    """Top-level entries with their descendants (flattened), in slug order."""
    entries = list(session.scalars(select(ViolationType).order_by(ViolationType.slug)))
    children: dict[int | None, list[ViolationType]] = {}
    for entry in entries:
        children.setdefault(entry.parent_id, []).append(entry)

    def descendants(entry: ViolationType) -> list[ViolationType]:
        out: list[ViolationType] = []
        for child in children.get(entry.id, []):
            out.append(child)
            out.extend(descendants(child))
        return out

    return [(top, descendants(top)) for top in children.get(None, [])]


@dataclass
class TimelineEntry:
    testimony_id: int
    said_when: str  # what the witness gave, or "" when unknown
    sort_key: str
    role: str
    confidence: str
    status: str


@dataclass
class IncidentView:
    incident: Incident
    timeline: list[TimelineEntry]
    corroborating: int
    reported_types: list[tuple[ViolationType, int]]
    related: list[tuple[str, Incident]]
    unreadable: int


def incident_view(session: Session, incident: Incident, identity: crypto.Identity) -> IncidentView:
    from store.models import IncidentRelation

    timeline: list[TimelineEntry] = []
    unreadable = 0
    links = session.execute(
        select(TestimonyIncident, Testimony)
        .join(Testimony)
        .where(TestimonyIncident.incident_id == incident.id)
    ).all()
    for link, testimony in links:
        try:
            details = open_document(session, testimony.details_blob_id, [identity])
        except crypto.NoIdentityMatchError:
            details = {}
            unreadable += 1
        when_date = str(details.get("when_date") or "")
        when_approx = str(details.get("when_approx") or "")
        said = " — ".join(x for x in (when_date, when_approx) if x)
        timeline.append(
            TimelineEntry(
                testimony.id,
                said,
                when_date or "9999",
                link.role,
                link.confidence,
                testimony.status,
            )
        )
    timeline.sort(key=lambda e: (e.sort_key, e.testimony_id))
    tagged = Counter(
        session.scalars(
            select(TestimonyViolation.violation_type_id)
            .join(
                TestimonyIncident, TestimonyIncident.testimony_id == TestimonyViolation.testimony_id
            )
            .where(TestimonyIncident.incident_id == incident.id)
        )
    )
    types = (
        {
            t.id: t
            for t in session.scalars(
                select(ViolationType).where(ViolationType.id.in_(list(tagged)))
            )
        }
        if tagged
        else {}
    )
    related = [
        (relation, other)
        for relation, other in session.execute(
            select(IncidentRelation.relation, Incident)
            .join(Incident, Incident.id == IncidentRelation.related_id)
            .where(IncidentRelation.incident_id == incident.id)
        ).all()
    ]
    related += [
        ("is_" + relation, other)
        for relation, other in session.execute(
            select(IncidentRelation.relation, Incident)
            .join(Incident, Incident.id == IncidentRelation.incident_id)
            .where(IncidentRelation.related_id == incident.id)
        ).all()
    ]
    return IncidentView(
        incident,
        timeline,
        corroboration(session, [incident.id]).get(incident.id, 0),
        sorted(((types[i], n) for i, n in tagged.items()), key=lambda x: (-x[1], x[0].slug)),
        related,
        unreadable,
    )
