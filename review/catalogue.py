"""Incidents in the review interface, as blueprints named for what a reviewer does:
``incidents`` (browse the catalogue, see corroboration; admins create and edit),
``mapping`` (link a testimony to incidents, tag violation types) and ``catalogue``
(admins edit places and the violation vocabulary). Every change is audited with the
previous value."""

from __future__ import annotations

import json
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
from store import incidents as store_incidents
from store.blobs import discard, seal_document
from store.incidents import CONFIDENCES, ROLES, corroboration, incident_doc
from store.instance import today
from store.models import (
    Incident,
    Place,
    Testimony,
    TestimonyIncident,
    TestimonyViolation,
    ViolationType,
)

from . import access, mapping
from .current import actor as _actor
from .current import db as _db
from .forms import (
    PLACE_KINDS,
    PRECISIONS,
    SLUG,
    SOURCE_PARTS,
    STATUS_LABELS,
    IncidentForm,
    PlaceForm,
    ViolationTypeForm,
    source_lines,
)
from .roles import admin_only

incidents = Blueprint("incidents", __name__, url_prefix="/incidents")
links = Blueprint("mapping", __name__, url_prefix="/testimony")
catalogue = Blueprint("catalogue", __name__, url_prefix="/catalogue")
BLUEPRINTS = [incidents, links, catalogue]


# How the incident page names a relation between incidents, read from the incident it is
# on: "A follows B" on A's page, "B is followed by A" on B's (review.mapping names the
# inverse of a relation "is_" + the relation).
RELATION_LABELS = {
    "caused_by": _l("caused by"),
    "part_of": _l("part of"),
    "follows": _l("follows"),
}
INVERSE_RELATION_LABELS = {
    "caused_by": _l("led to"),
    "part_of": _l("includes"),
    "follows": _l("is followed by"),
}


def relation_label(code: str) -> str:
    if code in RELATION_LABELS:
        return str(RELATION_LABELS[code])
    if code.startswith("is_") and code[3:] in INVERSE_RELATION_LABELS:
        return str(INVERSE_RELATION_LABELS[code[3:]])
    return code.replace("_", " ")


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
        openable = access.openable(session, g.reviewer, (e.testimony_id for e in view.timeline))
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
            relation_label=relation_label,
            openable=openable,
        )


# --- linking and tagging --------------------------------------------------------------------


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
    role, confidence = request.form.get("role"), request.form.get("confidence")
    passage = request.form.get("passage", "").strip()[:5000]
    with _db().transaction() as session:
        testimony = access.testimony_or_403(session, testimony_id)
        if role not in ROLES or confidence not in CONFIDENCES:
            return _back(testimony_id, "choices")
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
        replaced = existing.passage_blob_id if passage else None
        if passage:
            existing.passage_blob_id = seal_document(session, {"text": passage}).id
        session.flush()
        if replaced:
            discard(session, [replaced])  # the old passage would be an orphan
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
    with _db().transaction() as session:
        access.testimony_or_403(session, testimony_id)
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
    with _db().transaction() as session:
        access.testimony_or_403(session, testimony_id)
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
# The forms read an entry; store.incidents.save_* validates it against the catalogue's
# schema, saves it and audits it, exactly as an import of the same entry would.


def _incident_doc_from(form: IncidentForm, slug: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "slug": slug,
        "title": {
            k: getattr(form, "title_" + k).data
            for k in ("en", "ru")
            if getattr(form, "title_" + k).data
        },
        "description": {
            k: getattr(form, "description_" + k).data
            for k in ("en", "ru")
            if getattr(form, "description_" + k).data
        },
        "start": form.start.data,
        "precision": form.precision.data,
        "places": list(form.places.data or []),
        "violation_types": list(form.violation_types.data or []),
        "figures": json.loads(form.figures.data or "{}"),
        "figures_note": form.figures_note.data or "",
        "sources": [
            {k: v for k, v in zip(SOURCE_PARTS, parts, strict=False) if v}
            for parts in source_lines(form.sources.data or "")
        ],
    }
    if form.end.data:
        doc["end"] = form.end.data
    return doc


def _incident_form(session: Session, incident: Incident | None) -> IncidentForm:
    """The editor's form: from the request when it was sent, else from ``incident``."""
    data = None
    if request.method == "GET" and incident is not None:
        doc = incident_doc(incident, [])
        data = {
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
                " | ".join(s.get(k, "") for k in SOURCE_PARTS).rstrip(" |") for s in doc["sources"]
            ),
            "places": doc["places"],
            "violation_types": doc["violation_types"],
        }
    form = IncidentForm(data=data) if data is not None else IncidentForm()
    form.places.choices = [(slug, slug) for slug in session.scalars(select(Place.slug))]
    form.violation_types.choices = [
        (slug, slug) for slug in session.scalars(select(ViolationType.slug))
    ]
    return form


def _editor(
    session: Session, incident: Incident | None, form: IncidentForm, errors: list[str]
) -> Any:
    return render_template(
        "incident_edit.html",
        incident=incident,
        form=form,
        errors=errors,
        places=list(session.scalars(select(Place).order_by(Place.slug))),
        types=list(session.scalars(select(ViolationType).order_by(ViolationType.slug))),
        label=label,
        precisions=PRECISIONS,
    ), 400 if errors else 200


def _form_errors(form: Any) -> list[str]:
    """The form's messages, each once, in the order of its fields."""
    seen: list[str] = []
    for messages in form.errors.values():
        for message in messages:
            if str(message) not in seen:
                seen.append(str(message))
    return seen


def _refused(exc: store_incidents.CatalogueError) -> str:
    return _("The catalogue refuses this entry: %(problem)s", problem=str(exc))


def _save_incident_from(session: Session, incident: Incident | None) -> Any:
    form = _incident_form(session, incident)
    if request.method == "GET":
        return _editor(session, incident, form, [])
    valid = form.validate()
    errors = _form_errors(form)
    slug = incident.slug if incident is not None else form.slug.data or ""
    if incident is None:
        if not SLUG.match(slug):
            errors.insert(0, _("The short name may use a–z, 0–9, - and _ (2 to 80 characters)."))
        elif session.scalar(select(Incident).where(Incident.slug == slug)):
            errors.insert(0, _("An incident with this short name exists."))
    if errors or not valid:
        return _editor(session, incident, form, errors)
    doc = _incident_doc_from(form, slug)
    if incident is not None:  # the Kazakh text the editor does not show is kept
        for key in ("title", "description"):
            if (getattr(incident, key) or {}).get("kk"):
                doc[key]["kk"] = getattr(incident, key)["kk"]
    try:
        store_incidents.save_incident(session, doc, _actor())
    except store_incidents.CatalogueError as exc:
        return _editor(session, incident, form, [_refused(exc)])
    return redirect(url_for("incidents.show", slug=slug))


@incidents.route("/new", methods=["GET", "POST"])
@admin_only
def create() -> Any:
    with _db().transaction() as session:
        return _save_incident_from(session, None)


@incidents.route("/<slug>/edit", methods=["GET", "POST"])
@admin_only
def edit(slug: str) -> Any:
    with _db().transaction() as session:
        return _save_incident_from(session, _incident(session, slug))


def _type_form(session: Session) -> ViolationTypeForm:
    form = ViolationTypeForm()
    form.parent.choices = [("", "—")] + [
        (slug, slug) for slug in session.scalars(select(ViolationType.slug))
    ]
    return form


@catalogue.route("/")
def overview() -> Any:
    with _db().sessions() as session:
        return render_template(
            "catalogue.html",
            places=list(session.scalars(select(Place).order_by(Place.slug))),
            vocabulary=mapping.vocabulary_tree(session),
            label=label,
            kinds=PLACE_KINDS,
        )


def _flash_refusal(errors: list[str]) -> Any:
    for message in errors:
        flash(message, "error")
    return redirect(url_for("catalogue.overview"))


@catalogue.route("/places", methods=["POST"])
@admin_only
def save_place() -> Any:
    form = PlaceForm()
    if not form.validate():
        return _flash_refusal(_form_errors(form))
    doc = {
        "slug": form.slug.data,
        "names": {k: getattr(form, "name_" + k).data for k in ("en", "ru", "kk")},
        "district": form.district.data,
        "kind": form.kind.data,
        "lat": float(form.lat.data),
        "lon": float(form.lon.data),
    }
    try:
        with _db().transaction() as session:
            store_incidents.save_place(session, doc, _actor())
    except store_incidents.CatalogueError as exc:
        return _flash_refusal([_refused(exc)])
    return redirect(url_for("catalogue.overview") + "#places")


@catalogue.route("/vocabulary", methods=["POST"])
@admin_only
def save_type() -> Any:
    try:
        with _db().transaction() as session:
            form = _type_form(session)
            if not form.validate():
                return _flash_refusal(_form_errors(form))
            parent = form.parent.data or None
            doc = {
                "slug": form.slug.data,
                "parent": None if parent == form.slug.data else parent,
                "labels": {k: getattr(form, "label_" + k).data for k in ("en", "ru", "kk")},
            }
            store_incidents.save_violation_type(session, doc, _actor())
    except store_incidents.CatalogueError as exc:
        return _flash_refusal([_refused(exc)])
    return redirect(url_for("catalogue.overview") + "#vocabulary")
