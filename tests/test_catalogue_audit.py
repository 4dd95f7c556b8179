"""One code path writes the incident catalogue: an import and the review face's editor
making the same change leave the same audit event, ``{"previous": …, "new": …}`` in the
file format's shape, for every kind of entry, created and updated. Everything here is
invented."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import select

from store.incidents import FORMAT, import_document, save_incident, save_place
from store.models import AuditEvent

from .review_helpers import csrf_token, make_desk

PLACE = {
    "slug": "village-b",
    "names": {"en": "Village B", "ru": "Село Б", "kk": "Б ауылы"},
    "district": "Invented District",
    "kind": "town",
    "lat": 43.25,
    "lon": 75.5,
}
TOP = {
    "slug": "harm",
    "parent": None,
    "labels": {"en": "Harm", "ru": "Вред", "kk": "Зиян"},
}
TYPE = {
    "slug": "beating",
    "parent": "harm",
    "labels": {"en": "Beating", "ru": "Избиение", "kk": "Ұрып-соғу"},
}
INCIDENT = {
    "slug": "market-fire",
    "title": {"en": "Fire at the market", "ru": "Пожар на рынке"},
    "description": {"en": "Invented incident for tests."},
    "start": "2020-02-08",
    "end": "2020-02-09",
    "precision": "day",
    "places": ["village-b"],
    "violation_types": ["beating"],
    "figures": {"injured": 4},
    "figures_note": "Invented figures.",
    "sources": [
        {"title": "Invented report", "publisher": "Nobody", "url": "https://example.org/r"}
    ],
}


def _changed(entry: dict) -> dict:
    """The same entry with one field of each kind changed."""
    changed = copy.deepcopy(entry)
    if "names" in changed:
        changed["district"] = "Another Invented District"
    elif "labels" in changed:
        changed["labels"]["en"] += " (changed)"
    else:
        changed["figures"] = {"injured": 5, "killed": 1}
        changed["description"]["en"] = "Changed."
    return changed


def _form(kind: str, entry: dict) -> dict:
    if kind == "place":
        return {
            "slug": entry["slug"],
            **{"name_" + k: v for k, v in entry["names"].items()},
            "district": entry["district"],
            "kind": entry["kind"],
            "lat": str(entry["lat"]),
            "lon": str(entry["lon"]),
        }
    if kind == "violation_type":
        return {
            "slug": entry["slug"],
            "parent": entry["parent"] or "",
            **{"label_" + k: v for k, v in entry["labels"].items()},
        }
    return {
        "slug": entry["slug"],
        **{"title_" + k: v for k, v in entry["title"].items()},
        **{"description_" + k: v for k, v in entry["description"].items()},
        "start": entry["start"],
        "end": entry.get("end", ""),
        "precision": entry["precision"],
        "places": entry["places"],
        "violation_types": entry["violation_types"],
        "figures": json.dumps(entry.get("figures", {})),
        "figures_note": entry.get("figures_note", ""),
        "sources": "\n".join(
            " | ".join(s.get(k, "") for k in ("title", "publisher", "url"))
            for s in entry["sources"]
        ),
    }


def _path(kind: str, entry: dict, created: bool) -> str:
    if kind == "place":
        return "/catalogue/places"
    if kind == "violation_type":
        return "/catalogue/vocabulary"
    return "/incidents/%s/edit" % entry["slug"] if created else "/incidents/new"


def _document(kind: str, entry: dict) -> dict:
    """A catalogue file holding ``entry`` alone."""
    document: dict = {"format": FORMAT, "incidents": []}
    document[{"place": "places", "violation_type": "violation_types"}.get(kind, "incidents")] = [
        copy.deepcopy(entry)
    ]
    return document


def _events(desk, kind: str) -> dict[str, dict]:
    with desk.db.sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like(kind + ".%")).order_by(AuditEvent.seq)
        ).all()
        return {
            row.action: {"subject": row.subject, "details": json.loads(row.details)} for row in rows
        }


def _steps():
    """Each change in order (what an entry refers to is created first)."""
    return [
        ("place", PLACE),
        ("violation_type", TOP),
        ("violation_type", TYPE),
        ("incident", INCIDENT),
    ]


@pytest.fixture
def desks(tmp_path, monkeypatch):
    importer = make_desk(tmp_path / "import", monkeypatch)
    editor = make_desk(tmp_path / "editor", monkeypatch)
    admin = editor.add_reviewer("aigerim", admin=True)
    yield importer, editor, editor.logged_in(admin)
    importer.close()
    editor.close()


def test_import_and_editor_audit_the_same_change_identically(desks):
    importer, editor, client = desks
    for kind, entry in _steps():
        for created, version in ((False, entry), (True, _changed(entry))):
            with importer.db.transaction() as session:
                import_document(session, _document(kind, version), "operator")
            response = client.post(_path(kind, entry, created), data=_form(kind, version))
            assert response.status_code == 302, (kind, response.data.decode()[:2000])
    for kind in ("place", "violation_type", "incident"):
        imported, edited = _events(importer, kind), _events(editor, kind)
        assert set(imported) == {kind + ".create", kind + ".update"}, imported
        assert imported == edited, kind
        for action, event in imported.items():
            details = event["details"]
            assert set(details) == {"previous", "new"}, action
            assert (details["previous"] is None) == action.endswith(".create"), action
            assert isinstance(details["new"], dict) and details["new"]["slug"]
    assert importer.audit_ok() and editor.audit_ok()


def test_a_create_and_an_update_share_one_details_shape(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    with desk.db.transaction() as session:
        save_place(session, PLACE, "operator")
        save_place(session, PLACE, "operator")  # unchanged: no event
        save_place(session, _changed(PLACE), "operator")
    events = _events(desk, "place")
    assert list(events) == ["place.create", "place.update"]
    create, update = (events[a]["details"] for a in ("place.create", "place.update"))
    assert create == {"previous": None, "new": PLACE}
    assert update == {"previous": PLACE, "new": _changed(PLACE)}
    desk.close()


def test_save_incident_refuses_what_the_schema_refuses(tmp_path, monkeypatch):
    from store.incidents import CatalogueError

    desk = make_desk(tmp_path, monkeypatch)
    with desk.db.transaction() as session:
        with pytest.raises(CatalogueError, match="unknown place village-b"):
            save_incident(session, INCIDENT, "operator")
        with pytest.raises(CatalogueError, match="figures"):
            save_incident(session, dict(INCIDENT, places=[], figures={"moods": 1}), "operator")
    assert "incident.create" not in desk.audit_actions()
    desk.close()


def test_the_editor_shows_a_refusal_of_the_schema(desks):
    _importer, editor, client = desks
    form = _form("incident", dict(INCIDENT, places=[], violation_types=[]))
    refused = client.post("/incidents/new", data={**form, "figures": '{"moods": 1}'})
    assert refused.status_code == 400
    assert "The catalogue refuses this entry" in refused.data.decode()
    assert "incident.create" not in editor.audit_actions()


def test_catalogue_posts_without_a_csrf_token_are_refused(desks):
    importer, editor, client = desks
    editor.review_app.config["WTF_CSRF_ENABLED"] = True
    token = csrf_token(client.get("/catalogue/"))
    for kind, entry in _steps():
        before = editor.dump()
        path, data = _path(kind, entry, False), _form(kind, entry)
        for extra in ({}, {"csrf_token": "forged"}):
            response = client.post(path, data={**data, **extra})
            assert response.status_code == 400, (path, extra)
        assert editor.dump() == before, path
        accepted = client.post(path, data={**data, "csrf_token": token})
        assert accepted.status_code == 302, path
    assert editor.audit_actions()[-1] == "incident.create"


def test_the_editor_keeps_the_kazakh_text_it_does_not_show(desks):
    _importer, editor, client = desks
    for kind, entry in _steps()[:-1]:
        assert client.post(_path(kind, entry, False), data=_form(kind, entry)).status_code == 302
    kazakh = copy.deepcopy(INCIDENT)
    kazakh["title"]["kk"] = "Базардағы өрт"
    with editor.db.transaction() as session:
        save_incident(session, kazakh, "operator")
    form = _form("incident", _changed(INCIDENT))
    assert client.post(_path("incident", INCIDENT, True), data=form).status_code == 302
    update = _events(editor, "incident")["incident.update"]["details"]
    assert update["new"]["title"]["kk"] == "Базардағы өрт"
    assert update["new"]["description"]["en"] == "Changed."
