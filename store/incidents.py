"""The incident catalogue: loading it from a file, writing it back, and one function for
corroboration.

The file format is ``testimony-incidents/1`` (schema: ``store/data/incidents.schema.json``):
places, violation types and incidents keyed by slug. Import is idempotent: running it
twice changes nothing the second time, and ``export`` writes what ``import`` reads.

Every write goes through ``save_place``, ``save_violation_type`` and ``save_incident``
(the importer and the review face's editor alike): each takes one entry in the file's
shape, validates it against the schema, creates or updates the row and records the
change in the audit chain as ``<kind>.create`` or ``<kind>.update`` with the details
``{"previous": <entry before, or null>, "new": <entry after>}``, both as ``export`` would
write them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from . import audit
from .models import (
    Incident,
    IncidentRelation,
    Place,
    Source,
    Testimony,
    TestimonyIncident,
    ViolationType,
)

FORMAT = "testimony-incidents/1"
DATA = Path(__file__).resolve().parent / "data"
SCHEMA = DATA / "incidents.schema.json"
ROLES = ("eyewitness", "victim", "relative", "hearsay")
CONFIDENCES = ("low", "medium", "high")
RELATIONS = ("caused_by", "part_of", "follows")


class CatalogueError(ValueError):
    """The file does not follow the format; the message lists every problem."""


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def validate(
    document: Any,
    known_places: AbstractSet[str] = frozenset(),
    known_types: AbstractSet[str] = frozenset(),
    known_incidents: AbstractSet[str] = frozenset(),
) -> None:
    """Check ``document`` against the schema and its references, which may also name the
    ``known_*`` slugs (those already in the catalogue)."""
    validator = _validator()
    problems = [
        "%s: %s" % ("/".join(map(str, e.absolute_path)) or "(top)", e.message)
        for e in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    ]
    if problems:
        raise CatalogueError("; ".join(problems[:20]))
    places = {p["slug"] for p in document.get("places", [])} | set(known_places)
    types = {t["slug"] for t in document.get("violation_types", [])} | set(known_types)
    incidents = [i["slug"] for i in document["incidents"]]
    known = set(incidents) | set(known_incidents)
    for kind, slugs in (
        ("place", [p["slug"] for p in document.get("places", [])]),
        ("violation type", [t["slug"] for t in document.get("violation_types", [])]),
        ("incident", incidents),
    ):
        duplicates = {s for s in slugs if slugs.count(s) > 1}
        if duplicates:
            problems.append("duplicate %s slugs: %s" % (kind, ", ".join(sorted(duplicates))))
    for entry in document.get("violation_types", []):
        if entry.get("parent") and entry["parent"] not in types:
            problems.append(
                "violation type %s: unknown parent %s" % (entry["slug"], entry["parent"])
            )
    for incident in document["incidents"]:
        for slug in incident["places"]:
            if slug not in places:
                problems.append("incident %s: unknown place %s" % (incident["slug"], slug))
        for slug in incident["violation_types"]:
            if slug not in types:
                problems.append("incident %s: unknown violation type %s" % (incident["slug"], slug))
        for link in incident.get("related", []):
            if link["incident"] not in known:
                problems.append(
                    "incident %s: unknown related incident %s"
                    % (incident["slug"], link["incident"])
                )
    if problems:
        raise CatalogueError("; ".join(problems[:20]))


@dataclass
class ImportResult:
    created: dict[str, int] = field(
        default_factory=lambda: {"place": 0, "violation_type": 0, "incident": 0}
    )
    updated: dict[str, int] = field(
        default_factory=lambda: {"place": 0, "violation_type": 0, "incident": 0}
    )

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())


def place_doc(place: Place) -> dict[str, Any]:
    return {
        "slug": place.slug,
        "names": place.names,
        "district": place.district,
        "kind": place.kind,
        "lat": place.lat,
        "lon": place.lon,
    }


def _type_doc(entry: ViolationType, slugs: dict[int, str]) -> dict[str, Any]:
    return {
        "slug": entry.slug,
        "parent": slugs.get(entry.parent_id) if entry.parent_id else None,
        "labels": entry.labels,
    }


def incident_doc(incident: Incident, related: list[tuple[str, str]]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "slug": incident.slug,
        "title": incident.title,
        "description": incident.description,
        "start": incident.start,
    }
    if incident.end:
        doc["end"] = incident.end
    doc.update(
        precision=incident.precision,
        places=[p.slug for p in incident.places],
        violation_types=[v.slug for v in incident.violation_types],
    )
    if incident.figures:
        doc["figures"] = incident.figures
    if incident.figures_note:
        doc["figures_note"] = incident.figures_note
    doc["sources"] = [
        {
            k: v
            for k, v in (
                ("title", s.title),
                ("publisher", s.publisher),
                ("url", s.url),
                ("language", s.language),
                ("date", s.date),
            )
            if v
        }
        for s in incident.sources
    ]
    if related:
        doc["related"] = [{"incident": slug, "relation": rel} for slug, rel in related]
    return doc


def _related(session: Session, incident: Incident) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Incident.slug, IncidentRelation.relation)
        .join(IncidentRelation, IncidentRelation.related_id == Incident.id)
        .where(IncidentRelation.incident_id == incident.id)
        .order_by(Incident.slug, IncidentRelation.relation)
    ).all()
    return [(slug, relation) for slug, relation in rows]


def _normalized(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, ensure_ascii=False)


def _audit(
    session: Session,
    actor: str,
    kind: str,
    slug: str,
    previous: dict[str, Any] | None,
    new: dict[str, Any],
) -> str:
    """The one audit event of a catalogue change: ``{"previous": old doc or None, "new":
    new doc}``, both in the file format's shape (what ``export`` writes). Returns what
    happened: "created" or "updated"."""
    audit.append(
        session,
        actor,
        "%s.%s" % (kind, "create" if previous is None else "update"),
        "%s:%s" % (kind, slug),
        {"previous": previous, "new": new},
    )
    return "created" if previous is None else "updated"


def _existing(session: Session, model: Any, slugs: list[str]) -> set[str]:
    if not slugs:
        return set()
    return set(session.scalars(select(model.slug).where(model.slug.in_(slugs))))


def _save_place(session: Session, doc: dict[str, Any], actor: str) -> tuple[Place, str | None]:
    validate({"format": FORMAT, "places": [doc], "incidents": []})
    new = {"kind": "village", **doc}
    place = session.scalar(select(Place).where(Place.slug == doc["slug"]))
    previous = place_doc(place) if place is not None else None
    if place is not None and previous is not None and _normalized(previous) == _normalized(new):
        return place, None
    if place is None:
        place = Place(**new)
        session.add(place)
    else:
        for key, value in new.items():
            setattr(place, key, value)
    session.flush()
    return place, _audit(session, actor, "place", doc["slug"], previous, place_doc(place))


def _save_violation_type(
    session: Session, doc: dict[str, Any], actor: str
) -> tuple[ViolationType, str | None]:
    parent_slug = doc.get("parent") or None
    validate(
        {"format": FORMAT, "violation_types": [doc], "incidents": []},
        known_types=_existing(session, ViolationType, [parent_slug] if parent_slug else []),
    )
    entry = session.scalar(select(ViolationType).where(ViolationType.slug == doc["slug"]))
    parent = (
        session.scalar(select(ViolationType).where(ViolationType.slug == parent_slug))
        if parent_slug
        else None
    )
    previous = _type_doc(entry, _parent_slugs(session, entry)) if entry is not None else None
    new = {"slug": doc["slug"], "parent": parent_slug, "labels": doc["labels"]}
    if entry is not None and previous is not None and _normalized(previous) == _normalized(new):
        return entry, None
    if entry is None:
        entry = ViolationType(slug=doc["slug"], labels=doc["labels"])
        session.add(entry)
        session.flush()
    if parent_slug == doc["slug"]:
        parent = entry
    entry.labels = doc["labels"]
    entry.parent_id = parent.id if parent is not None else None
    session.flush()
    new = _type_doc(entry, _parent_slugs(session, entry))
    return entry, _audit(session, actor, "violation_type", doc["slug"], previous, new)


def _parent_slugs(session: Session, entry: ViolationType) -> dict[int, str]:
    if entry.parent_id is None:
        return {}
    parent = session.get(ViolationType, entry.parent_id)
    return {entry.parent_id: parent.slug} if parent is not None else {}


def _incident_new_doc(
    session: Session, incident: Incident | None, doc: dict[str, Any]
) -> dict[str, Any]:
    """``doc`` as ``incident_doc`` would read it back once saved; without ``related`` the
    incident keeps the relations it has."""
    new = _complete({k: v for k, v in doc.items() if k != "related"})
    new["places"] = sorted(new["places"])
    new["violation_types"] = sorted(new["violation_types"])
    if "related" in doc:
        related = sorted((r["incident"], r["relation"]) for r in doc["related"])
    else:
        related = _related(session, incident) if incident is not None else []
    if related:
        new["related"] = [{"incident": slug, "relation": rel} for slug, rel in related]
    return new


def _save_incident(
    session: Session, doc: dict[str, Any], actor: str
) -> tuple[Incident, str | None]:
    related = [r["incident"] for r in doc.get("related", [])]
    validate(
        {"format": FORMAT, "incidents": [doc]},
        known_places=_existing(session, Place, doc.get("places", [])),
        known_types=_existing(session, ViolationType, doc.get("violation_types", [])),
        known_incidents=_existing(session, Incident, related) | {doc["slug"]},
    )
    incident = session.scalar(select(Incident).where(Incident.slug == doc["slug"]))
    previous = incident_doc(incident, _related(session, incident)) if incident else None
    new = _incident_new_doc(session, incident, doc)
    if incident is not None and previous is not None and _normalized(previous) == _normalized(new):
        return incident, None
    if incident is None:
        incident = Incident(slug=doc["slug"])
        session.add(incident)
    incident.title = new["title"]
    incident.description = new["description"]
    incident.start = new["start"]
    incident.end = new.get("end")
    incident.precision = new["precision"]
    incident.figures = new.get("figures", {})
    incident.figures_note = new.get("figures_note", "")
    incident.places = list(
        session.scalars(select(Place).where(Place.slug.in_(new["places"])).order_by(Place.slug))
    )
    incident.violation_types = list(
        session.scalars(
            select(ViolationType)
            .where(ViolationType.slug.in_(new["violation_types"]))
            .order_by(ViolationType.slug)
        )
    )
    if previous is None or previous["sources"] != new["sources"]:
        incident.sources = [Source(**source) for source in new["sources"]]
    session.flush()
    wanted = [(r["incident"], r["relation"]) for r in new.get("related", [])]
    if previous is None or previous.get("related", []) != new.get("related", []):
        session.execute(delete(IncidentRelation).where(IncidentRelation.incident_id == incident.id))
        ids = dict(
            session.execute(
                select(Incident.slug, Incident.id).where(
                    Incident.slug.in_([slug for slug, _ in wanted])
                )
            ).all()
        )
        for slug, relation in wanted:
            session.add(
                IncidentRelation(incident_id=incident.id, related_id=ids[slug], relation=relation)
            )
        session.flush()
    new = incident_doc(incident, _related(session, incident))
    return incident, _audit(session, actor, "incident", doc["slug"], previous, new)


def save_place(session: Session, doc: dict[str, Any], actor: str) -> Place:
    """Create or update the place ``doc`` (one entry of the file's ``places``); audit a
    change as ``place.create`` or ``place.update``. An unchanged entry is left alone."""
    return _save_place(session, doc, actor)[0]


def save_violation_type(session: Session, doc: dict[str, Any], actor: str) -> ViolationType:
    """Create or update the vocabulary entry ``doc`` (one entry of ``violation_types``);
    its parent must exist. Audited as ``violation_type.create`` or ``.update``."""
    return _save_violation_type(session, doc, actor)[0]


def save_incident(session: Session, doc: dict[str, Any], actor: str) -> Incident:
    """Create or update the incident ``doc`` (one entry of ``incidents``); its places,
    violation types and related incidents must exist. Without ``related`` its relations
    stay as they are. Audited as ``incident.create`` or ``incident.update``."""
    return _save_incident(session, doc, actor)[0]


def _dependency_order(entries: list[dict[str, Any]], refers: Any) -> list[dict[str, Any]]:
    """``entries`` in file order, except that an entry comes after the entries of the same
    document it refers to (as far as the references do not go round in a circle)."""
    slugs = {e["slug"] for e in entries}
    ordered: list[dict[str, Any]] = []
    done: set[str] = set()
    pending = list(entries)
    while pending:
        ready = [
            e
            for e in pending
            if all(s in done or s not in slugs or s == e["slug"] for s in refers(e))
        ]
        if not ready:
            return ordered + pending
        ordered += ready
        done |= {e["slug"] for e in ready}
        pending = [e for e in pending if e["slug"] not in done]
    return ordered


def import_document(session: Session, document: dict[str, Any], actor: str) -> ImportResult:
    """Create or update everything in ``document`` with ``save_place``,
    ``save_violation_type`` and ``save_incident``. Unchanged entries are left alone (so a
    second import is a no-op). An entry that refers to one of the same document that does
    not exist yet, in a circle, is saved without that reference and completed after."""
    validate(
        document,
        set(session.scalars(select(Place.slug))),
        set(session.scalars(select(ViolationType.slug))),
        set(session.scalars(select(Incident.slug))),
    )
    result = ImportResult()

    def save(kind: str, saver: Any, entries: list[dict[str, Any]], trim: Any) -> None:
        later = []
        created = set()
        for entry in entries:
            partial = trim(entry)
            change = saver(session, partial, actor)[1]
            if change:
                getattr(result, change)[kind] += 1
                if change == "created":
                    created.add(entry["slug"])
            if partial is not entry:
                later.append(entry)
        for entry in later:
            change = saver(session, entry, actor)[1]
            if change and entry["slug"] not in created:
                result.updated[kind] += 1

    for entry in document.get("places", []):
        change = _save_place(session, entry, actor)[1]
        if change:
            getattr(result, change)["place"] += 1

    def without_new_parent(entry: dict[str, Any]) -> dict[str, Any]:
        parent = entry.get("parent")
        if parent and not _existing(session, ViolationType, [parent]):
            return {**entry, "parent": None}
        return entry

    save(
        "violation_type",
        _save_violation_type,
        _dependency_order(document.get("violation_types", []), lambda e: [e.get("parent")]),
        without_new_parent,
    )

    def without_new_related(entry: dict[str, Any]) -> dict[str, Any]:
        targets = [r["incident"] for r in entry.get("related", [])]
        known = _existing(session, Incident, targets)
        if set(targets) <= known:
            return entry
        return {
            **entry,
            "related": [r for r in entry["related"] if r["incident"] in known],
        }

    save(
        "incident",
        _save_incident,
        _dependency_order(
            document["incidents"], lambda e: [r["incident"] for r in e.get("related", [])]
        ),
        without_new_related,
    )
    return result


def _complete(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` as export would write it (optional empty parts dropped)."""
    doc = dict(entry)
    for key in ("figures", "figures_note", "end"):
        if not doc.get(key):
            doc.pop(key, None)
    return doc


def export_document(session: Session) -> dict[str, Any]:
    types = list(session.scalars(select(ViolationType).order_by(ViolationType.id)))
    slugs = {t.id: t.slug for t in types}
    return {
        "format": FORMAT,
        "violation_types": [_type_doc(t, slugs) for t in types],
        "places": [place_doc(p) for p in session.scalars(select(Place).order_by(Place.slug))],
        "incidents": [
            incident_doc(i, _related(session, i))
            for i in session.scalars(select(Incident).order_by(Incident.start, Incident.slug))
        ],
    }


def load_file(session: Session, path: str | Path, actor: str) -> ImportResult:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogueError("cannot read %s: %s" % (path, exc)) from None
    return import_document(session, document, actor)


# Roles whose testimony counts as corroboration: hearsay does not.
CORROBORATING_ROLES = ("eyewitness", "victim", "relative")
DISCOUNTED_STATUSES = ("not_credible", "withdrawn")


def corroboration(session: Session, incident_ids: list[int] | None = None) -> dict[int, int]:
    """Independent corroborating testimonies per incident.

    One testimony is one witness (one receipt), so it counts once per incident however
    many times it is linked. It counts if the witness's role is not hearsay, the reviewer's
    confidence is not low, and the testimony is not marked not credible or withdrawn.
    """
    query = (
        select(
            TestimonyIncident.incident_id, func.count(func.distinct(TestimonyIncident.testimony_id))
        )
        .join(Testimony, Testimony.id == TestimonyIncident.testimony_id)
        .where(
            TestimonyIncident.role.in_(CORROBORATING_ROLES),
            TestimonyIncident.confidence != "low",
            Testimony.status.not_in(DISCOUNTED_STATUSES),
        )
        .group_by(TestimonyIncident.incident_id)
    )
    if incident_ids is not None:
        query = query.where(TestimonyIncident.incident_id.in_(incident_ids))
    return {incident_id: count for incident_id, count in session.execute(query).all()}
