"""Incidents in the review interface, as blueprints named for what a reviewer does:
``incidents`` (browse the catalogue, see corroboration; admins create and edit),
``mapping`` (link a testimony to incidents, tag violation types) and ``catalogue``
(admins edit places and the violation vocabulary). Every change is audited with the
previous value."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store import audit
from store.blobs import active_recipients, pad_document, seal_blob
from store.incidents import CONFIDENCES, ROLES, corroboration, incident_doc, place_doc
from store.instance import today
from store.models import (
    Incident,
    Place,
    Source,
    Testimony,
    TestimonyIncident,
    TestimonyViolation,
    ViolationType,
)

from . import mapping
from .current import actor as _actor
from .current import checked as _checked
from .current import db as _db
from .forms import STATUS_LABELS, ActionForm
from .roles import admin_only

incidents = Blueprint("incidents", __name__, url_prefix="/incidents")
links = Blueprint("mapping", __name__, url_prefix="/testimony")
catalogue = Blueprint("catalogue", __name__, url_prefix="/catalogue")
BLUEPRINTS = [incidents, links, catalogue]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-_]{1,79}$")
_WHEN = re.compile(r"^\d{4}-\d{2}(-\d{2}(T\d{2}:\d{2})?)?$")
PRECISIONS = ("exact", "approximate", "day", "month")


def label(value: dict[str, str] | None, lang: str) -> str:
    value = value or {}
    return value.get(lang) or value.get("en") or next(iter(value.values()), "")


# --- browsing -------------------------------------------------------------------------------


@incidents.route("/")
def index() -> Any:
    with _db().sessions() as session:
        items = list(session.scalars(select(Incident).order_by(Incident.start, Incident.slug)))
        counts = corroboration(session)
        linked = dict(
            session.execute(
                select(TestimonyIncident.incident_id, func.count()).group_by(
                    TestimonyIncident.incident_id
                )
            ).all()
        )
        return render_template(
            "incidents.html", items=items, counts=counts, linked=linked, label=label
        )


def _incident(session: Session, slug: str) -> Incident:
    found = session.scalar(select(Incident).where(Incident.slug == slug))
    if found is None:
        abort(404)
    return found


@incidents.route("/<slug>")
def show(slug: str) -> Any:
    with _db().transaction() as session:
        incident = _incident(session, slug)
        view = mapping.incident_view(session, incident, g.identity)
        if view.timeline:
            audit.append(
                session,
                _actor(),
                "incident.timeline",
                "incident:%s" % slug,
                {"testimonies": len(view.timeline)},
            )
        return render_template(
            "incident.html",
            view=view,
            incident=incident,
            label=label,
            roles=mapping.ROLE_LABELS,
            confidences=mapping.CONFIDENCE_LABELS,
            status_labels=STATUS_LABELS,
        )


# --- linking and tagging --------------------------------------------------------------------


def _testimony(session: Session, testimony_id: int) -> Testimony:
    found = session.get(Testimony, testimony_id)
    if found is None:
        abort(404)
    return found


MAPPING_ERRORS = {
    "choices": _l("Choose the witness's role and your confidence."),
    "incident": _l("Choose an incident."),
    "passage": _l("The passage must be copied from the statement."),
}


def _back(testimony_id: int, error: str | None = None) -> Any:
    """Back to the testimony; ``error`` is a key of MAPPING_ERRORS, never free text, so a
    crafted link cannot put words of its own on the page."""
    if error:
        return redirect(
            url_for("testimony.show", testimony_id=testimony_id, mapping_error=error) + "#mapping"
        )
    return redirect(url_for("testimony.show", testimony_id=testimony_id) + "#mapping")


@links.route("/<int:testimony_id>/links", methods=["POST"])
def link(testimony_id: int) -> Any:
    _checked()
    role, confidence = request.form.get("role"), request.form.get("confidence")
    passage = request.form.get("passage", "").strip()[:5000]
    if role not in ROLES or confidence not in CONFIDENCES:
        return _back(testimony_id, "choices")
    with _db().transaction() as session:
        testimony = _testimony(session, testimony_id)
        incident = session.scalar(
            select(Incident).where(Incident.slug == request.form.get("incident", ""))
        )
        if incident is None:
            return _back(testimony_id, "incident")
        if passage and not mapping.passage_in_statements(session, testimony, g.identity, passage):
            return _back(testimony_id, "passage")
        existing = session.scalar(
            select(TestimonyIncident).where(
                TestimonyIncident.testimony_id == testimony.id,
                TestimonyIncident.incident_id == incident.id,
            )
        )
        previous = None
        if existing is None:
            existing = TestimonyIncident(
                testimony_id=testimony.id, incident_id=incident.id, linked_on=today()
            )
            session.add(existing)
        else:
            previous = {"role": existing.role, "confidence": existing.confidence}
        existing.role, existing.confidence = role, confidence
        existing.reviewer_id = g.reviewer.id
        if passage:
            existing.passage_blob_id = seal_blob(
                session, active_recipients(session), pad_document({"text": passage})
            ).id
        session.flush()
        audit.append(
            session,
            _actor(),
            "link.update" if previous else "link.add",
            "testimony:%d" % testimony.id,
            {
                "incident": incident.slug,
                "role": role,
                "confidence": confidence,
                "passage": bool(passage),
                "previous": previous,
            },
        )
    return _back(testimony_id)


@links.route("/<int:testimony_id>/links/<slug>/remove", methods=["POST"])
def unlink(testimony_id: int, slug: str) -> Any:
    _checked()
    with _db().transaction() as session:
        incident = _incident(session, slug)
        found = session.scalar(
            select(TestimonyIncident).where(
                TestimonyIncident.testimony_id == testimony_id,
                TestimonyIncident.incident_id == incident.id,
            )
        )
        if found is None:
            abort(404)
        audit.append(
            session,
            _actor(),
            "link.remove",
            "testimony:%d" % testimony_id,
            {"incident": slug, "previous": {"role": found.role, "confidence": found.confidence}},
        )
        session.delete(found)
    return _back(testimony_id)


@links.route("/<int:testimony_id>/tags", methods=["POST"])
def tags(testimony_id: int) -> Any:
    _checked()
    with _db().transaction() as session:
        _testimony(session, testimony_id)
        known = {t.slug: t.id for t in session.scalars(select(ViolationType))}
        wanted = {known[s] for s in request.form.getlist("tag") if s in known}
        current = mapping.tags_of(session, testimony_id)
        if wanted != current:
            session.execute(
                delete(TestimonyViolation).where(TestimonyViolation.testimony_id == testimony_id)
            )
            for type_id in sorted(wanted):
                session.add(
                    TestimonyViolation(testimony_id=testimony_id, violation_type_id=type_id)
                )
            slugs = {v: k for k, v in known.items()}
            audit.append(
                session,
                _actor(),
                "tags.update",
                "testimony:%d" % testimony_id,
                {
                    "previous": sorted(slugs[i] for i in current),
                    "new": sorted(slugs[i] for i in wanted),
                },
            )
    return _back(testimony_id)


def mapping_context(session: Session, testimony: Testimony) -> dict[str, Any]:
    """What the testimony page needs for its incidents-and-tags section."""
    return {
        "links": mapping.links_of(session, testimony, g.identity),
        "all_incidents": list(session.scalars(select(Incident).order_by(Incident.start))),
        "tags": mapping.tags_of(session, testimony.id),
        "vocabulary": mapping.vocabulary_tree(session),
        "roles": mapping.ROLE_LABELS,
        "confidences": mapping.CONFIDENCE_LABELS,
        "label": label,
        "mapping_error": MAPPING_ERRORS.get(request.args.get("mapping_error", "")),
    }


# --- editing the catalogue (admins) ---------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _incident_from_form(session: Session, form: Any, errors: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": {
            k: form.get("title_" + k, "").strip()
            for k in ("en", "ru")
            if form.get("title_" + k, "").strip()
        },
        "description": {
            k: form.get("description_" + k, "").strip()
            for k in ("en", "ru")
            if form.get("description_" + k, "").strip()
        },
        "start": form.get("start", "").strip(),
        "end": form.get("end", "").strip() or None,
        "precision": form.get("precision", ""),
        "places": form.getlist("places"),
        "violation_types": form.getlist("violation_types"),
        "figures_note": form.get("figures_note", "").strip(),
    }
    if "en" not in doc["title"] or "en" not in doc["description"]:
        errors.append(_("An English title and description are required."))
    for key in ("start", "end"):
        if doc[key] and not _WHEN.match(doc[key]):
            errors.append(_("Dates are written 2020-02-07, 2020-02-07T18:30 or 2020-04."))
    if doc["precision"] not in PRECISIONS:
        errors.append(_("Choose a date precision."))
    try:
        figures = json.loads(form.get("figures", "") or "{}")
        if not isinstance(figures, dict) or not all(
            isinstance(v, int) and v >= 0 for v in figures.values()
        ):
            raise ValueError
        doc["figures"] = figures
    except ValueError:
        errors.append(_('Figures must be a JSON object of whole numbers, like {"killed": 11}.'))
    sources = []
    for line in _lines(form.get("sources", "")):
        parts = [p.strip() for p in line.split("|")] + ["", "", "", ""]
        if not parts[0] or not parts[1]:
            errors.append(_("Each source line needs at least a title and a publisher."))
            continue
        sources.append(
            {
                k: v
                for k, v in zip(
                    ("title", "publisher", "url", "language", "date"), parts[:5], strict=True
                )
                if v
            }
        )
    doc["sources"] = sources
    return doc


def _editor(
    session: Session, incident: Incident | None, errors: list[str] | None = None, form: Any = None
) -> Any:
    places = list(session.scalars(select(Place).order_by(Place.slug)))
    types = list(session.scalars(select(ViolationType).order_by(ViolationType.slug)))
    if form is None and incident is not None:
        doc = incident_doc(incident, [])
        values = {
            "slug": incident.slug,
            "title_en": doc["title"].get("en", ""),
            "title_ru": doc["title"].get("ru", ""),
            "description_en": doc["description"].get("en", ""),
            "description_ru": doc["description"].get("ru", ""),
            "start": incident.start,
            "end": incident.end or "",
            "precision": incident.precision,
            "figures": json.dumps(incident.figures or {}, ensure_ascii=False),
            "figures_note": incident.figures_note,
            "sources": "\n".join(
                " | ".join(
                    s.get(k, "") for k in ("title", "publisher", "url", "language", "date")
                ).rstrip(" |")
                for s in doc["sources"]
            ),
            "places": doc["places"],
            "violation_types": doc["violation_types"],
        }
    elif form is not None:
        values = {key: form.get(key, "") for key in form}
        values["places"] = form.getlist("places")
        values["violation_types"] = form.getlist("violation_types")
    else:
        values = {"places": [], "violation_types": [], "figures": "{}", "precision": "day"}
    return render_template(
        "incident_edit.html",
        incident=incident,
        values=values,
        errors=errors or [],
        places=places,
        types=types,
        label=label,
        precisions=PRECISIONS,
        action=ActionForm(),
    ), 400 if errors else 200


@incidents.route("/new", methods=["GET", "POST"])
@admin_only
def create() -> Any:
    with _db().transaction() as session:
        if request.method == "GET":
            return _editor(session, None)
        _checked()
        errors: list[str] = []
        slug = request.form.get("slug", "").strip()
        if not _SLUG.match(slug):
            errors.append(_("The short name may use a–z, 0–9, - and _ (2 to 80 characters)."))
        elif session.scalar(select(Incident).where(Incident.slug == slug)):
            errors.append(_("An incident with this short name exists."))
        doc = _incident_from_form(session, request.form, errors)
        if errors:
            return _editor(session, None, errors, request.form)
        incident = Incident(slug=slug)
        session.add(incident)
        _apply(session, incident, doc)
        audit.append(
            session,
            _actor(),
            "incident.create",
            "incident:%s" % slug,
            {"new": incident_doc(incident, [])},
        )
    return redirect(url_for("incidents.show", slug=slug))


@incidents.route("/<slug>/edit", methods=["GET", "POST"])
@admin_only
def edit(slug: str) -> Any:
    with _db().transaction() as session:
        incident = _incident(session, slug)
        if request.method == "GET":
            return _editor(session, incident)
        _checked()
        errors: list[str] = []
        doc = _incident_from_form(session, request.form, errors)
        if errors:
            return _editor(session, incident, errors, request.form)
        previous = incident_doc(incident, [])
        _apply(session, incident, doc)
        audit.append(
            session,
            _actor(),
            "incident.update",
            "incident:%s" % slug,
            {"previous": previous, "new": incident_doc(incident, [])},
        )
    return redirect(url_for("incidents.show", slug=slug))


def _apply(session: Session, incident: Incident, doc: dict[str, Any]) -> None:
    incident.title, incident.description = doc["title"], doc["description"]
    incident.start, incident.end, incident.precision = doc["start"], doc["end"], doc["precision"]
    incident.figures, incident.figures_note = doc["figures"], doc["figures_note"]
    incident.places = list(session.scalars(select(Place).where(Place.slug.in_(doc["places"]))))
    incident.violation_types = list(
        session.scalars(select(ViolationType).where(ViolationType.slug.in_(doc["violation_types"])))
    )
    incident.sources = [Source(**s) for s in doc["sources"]]
    session.flush()


@catalogue.route("/")
def overview() -> Any:
    with _db().sessions() as session:
        return render_template(
            "catalogue.html",
            places=list(session.scalars(select(Place).order_by(Place.slug))),
            vocabulary=mapping.vocabulary_tree(session),
            label=label,
            action=ActionForm(),
        )


def _labels_from(form: Any, prefix: str) -> dict[str, str]:
    return {k: form.get(prefix + k, "").strip()[:300] for k in ("en", "ru", "kk")}


@catalogue.route("/places", methods=["POST"])
@admin_only
def save_place() -> Any:
    _checked()
    form = request.form
    slug = form.get("slug", "").strip()
    names = _labels_from(form, "name_")
    try:
        lat, lon = float(form.get("lat", "")), float(form.get("lon", ""))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError
    except ValueError:
        flash(_("Give coordinates in degrees."), "error")
        return redirect(url_for("catalogue.overview"))
    if not _SLUG.match(slug) or not all(names.values()) or not form.get("district", "").strip():
        flash(_("A place needs a short name, names in three languages and a district."), "error")
        return redirect(url_for("catalogue.overview"))
    new = {
        "slug": slug,
        "names": names,
        "district": form["district"].strip()[:120],
        "kind": form.get("kind", "village")[:20],
        "lat": lat,
        "lon": lon,
    }
    with _db().transaction() as session:
        place = session.scalar(select(Place).where(Place.slug == slug))
        previous = None
        if place is None:
            place = Place(**new)
            session.add(place)
        else:
            previous = place_doc(place)
            for key, value in new.items():
                setattr(place, key, value)
        audit.append(
            session,
            _actor(),
            "place.update" if previous else "place.create",
            "place:%s" % slug,
            {"previous": previous, "new": new},
        )
    return redirect(url_for("catalogue.overview") + "#places")


@catalogue.route("/vocabulary", methods=["POST"])
@admin_only
def save_type() -> Any:
    _checked()
    form = request.form
    slug = form.get("slug", "").strip()
    labels = _labels_from(form, "label_")
    if not _SLUG.match(slug) or not all(labels.values()):
        flash(_("A vocabulary entry needs a short name and labels in three languages."), "error")
        return redirect(url_for("catalogue.overview"))
    with _db().transaction() as session:
        parent = session.scalar(
            select(ViolationType).where(ViolationType.slug == form.get("parent", ""))
        )
        entry = session.scalar(select(ViolationType).where(ViolationType.slug == slug))
        previous = None
        if entry is None:
            entry = ViolationType(slug=slug, labels=labels)
            session.add(entry)
        else:
            previous = {"labels": entry.labels, "parent_id": entry.parent_id}
        if parent is not None and parent.slug == slug:
            parent = None
        entry.labels, entry.parent_id = labels, parent.id if parent else None
        audit.append(
            session,
            _actor(),
            "violation_type.update" if previous else "violation_type.create",
            "violation_type:%s" % slug,
            {
                "previous": previous,
                "new": {"labels": labels, "parent": parent.slug if parent else None},
            },
        )
    return redirect(url_for("catalogue.overview") + "#vocabulary")
