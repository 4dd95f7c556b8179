"""The incident catalogue: loading it from a file, writing it back, and one function for
corroboration.

The file format is ``testimony-incidents/1`` (schema: ``store/data/incidents.schema.json``):
places, violation types and incidents keyed by slug. Import is idempotent: running it
twice changes nothing the second time, and ``export`` writes what ``import`` reads. Every
change is recorded in the audit chain with the previous value.
"""

from __future__ import annotations

import json
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


def validate(
    document: Any,
    known_places: set[str] = frozenset(),  # type: ignore[assignment]
    known_types: set[str] = frozenset(),
) -> None:  # type: ignore[assignment]
    """Check ``document`` against the schema and its internal references."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    problems = [
        "%s: %s" % ("/".join(map(str, e.absolute_path)) or "(top)", e.message)
        for e in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    ]
    if problems:
        raise CatalogueError("; ".join(problems[:20]))
    places = {p["slug"] for p in document.get("places", [])} | set(known_places)
    types = {t["slug"] for t in document.get("violation_types", [])} | set(known_types)
    incidents = [i["slug"] for i in document["incidents"]]
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
            if link["incident"] not in incidents:
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
        .order_by(Incident.slug)
    ).all()
    return [(slug, relation) for slug, relation in rows]


def _normalized(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, ensure_ascii=False)


def import_document(session: Session, document: dict[str, Any], actor: str) -> ImportResult:
    """Create or update everything in ``document``; audit every change with its previous
    value. Unchanged entries are left alone (so a second import is a no-op)."""
    known_places = set(session.scalars(select(Place.slug)))
    known_types = set(session.scalars(select(ViolationType.slug)))
    validate(document, known_places, known_types)
    result = ImportResult()

    for entry in document.get("places", []):
        place = session.scalar(select(Place).where(Place.slug == entry["slug"]))
        new = {"kind": "village", **entry}
        if place is None:
            session.add(Place(**new))
            result.created["place"] += 1
            audit.append(session, actor, "place.create", "place:%s" % entry["slug"], new)
        elif _normalized(place_doc(place)) != _normalized(new):
            previous = place_doc(place)
            for key, value in new.items():
                setattr(place, key, value)
            result.updated["place"] += 1
            audit.append(
                session,
                actor,
                "place.update",
                "place:%s" % entry["slug"],
                {"previous": previous, "new": new},
            )
    session.flush()

    types = {t.slug: t for t in session.scalars(select(ViolationType))}
    slugs = {t.id: t.slug for t in types.values()}
    previous_types = {slug: _type_doc(t, slugs) for slug, t in types.items()}
    for entry in document.get("violation_types", []):
        if entry["slug"] not in types:
            types[entry["slug"]] = ViolationType(slug=entry["slug"], labels=entry["labels"])
            session.add(types[entry["slug"]])
    session.flush()
    for entry in document.get("violation_types", []):
        current = types[entry["slug"]]
        new = {"slug": entry["slug"], "parent": entry.get("parent"), "labels": entry["labels"]}
        current.parent_id = types[entry["parent"]].id if entry.get("parent") else None
        current.labels = entry["labels"]
        previous = previous_types.get(entry["slug"])
        if previous is None:
            result.created["violation_type"] += 1
            audit.append(
                session, actor, "violation_type.create", "violation_type:%s" % entry["slug"], new
            )
        elif _normalized(previous) != _normalized(new):
            result.updated["violation_type"] += 1
            audit.append(
                session,
                actor,
                "violation_type.update",
                "violation_type:%s" % entry["slug"],
                {"previous": previous, "new": new},
            )
    session.flush()

    places = {p.slug: p for p in session.scalars(select(Place))}
    incidents = {i.slug: i for i in session.scalars(select(Incident))}
    pending_relations: list[tuple[Incident, list[dict[str, str]]]] = []
    for entry in document["incidents"]:
        incident = incidents.get(entry["slug"])
        previous = incident_doc(incident, _related(session, incident)) if incident else None
        comparable = {k: v for k, v in entry.items() if k != "related"}
        if previous is not None and _normalized(
            {k: v for k, v in previous.items() if k != "related"}
        ) == _normalized(_complete(comparable)):
            pending_relations.append((incident, entry.get("related", [])))  # type: ignore[arg-type]
            continue
        if incident is None:
            incident = Incident(slug=entry["slug"])
            session.add(incident)
            incidents[entry["slug"]] = incident
            result.created["incident"] += 1
        else:
            result.updated["incident"] += 1
        incident.title = entry["title"]
        incident.description = entry["description"]
        incident.start = entry["start"]
        incident.end = entry.get("end")
        incident.precision = entry["precision"]
        incident.figures = entry.get("figures", {})
        incident.figures_note = entry.get("figures_note", "")
        incident.places = [places[s] for s in entry["places"]]
        incident.violation_types = [types[s] for s in entry["violation_types"]]
        incident.sources = [Source(**source) for source in entry["sources"]]
        session.flush()
        audit.append(
            session,
            actor,
            "incident.create" if previous is None else "incident.update",
            "incident:%s" % entry["slug"],
            {"previous": previous} if previous else {"slug": entry["slug"]},
        )
        pending_relations.append((incident, entry.get("related", [])))
    for incident, related in pending_relations:
        wanted = sorted((incidents[r["incident"]].id, r["relation"]) for r in related)
        current = sorted(
            session.execute(
                select(IncidentRelation.related_id, IncidentRelation.relation).where(
                    IncidentRelation.incident_id == incident.id
                )
            ).all()
        )
        if [tuple(c) for c in current] != wanted:
            session.execute(
                delete(IncidentRelation).where(IncidentRelation.incident_id == incident.id)
            )
            for related_id, relation in wanted:
                session.add(
                    IncidentRelation(
                        incident_id=incident.id, related_id=related_id, relation=relation
                    )
                )
    session.flush()
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
