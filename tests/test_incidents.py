"""The incident catalogue and mapping testimony to it: the Korday 2020 dataset loads and
validates, import is idempotent and export round-trips, links and tags are audited, the
supporting passage stays sealed, and corroboration counts independent witnesses only."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store.incidents import (
    DATA,
    CatalogueError,
    corroboration,
    export_document,
    import_document,
    load_file,
    validate,
)
from store.models import AuditEvent, Incident, Testimony

from .conftest import database_env
from .intake_helpers import receipt_code, submit
from .review_helpers import make_desk

ROOT = Path(__file__).resolve().parent.parent
VOCABULARY = DATA / "violation-types.json"
KORDAY = DATA / "korday-2020.json"

MINI = {
    "format": "testimony-incidents/1",
    "violation_types": [
        {
            "slug": "violence",
            "parent": None,
            "labels": {"en": "Violence", "ru": "Насилие", "kk": "Зорлық-зомбылық"},
        },
        {
            "slug": "arson",
            "parent": "violence",
            "labels": {"en": "Arson", "ru": "Поджог", "kk": "Өртеу"},
        },
    ],
    "places": [
        {
            "slug": "village-a",
            "names": {"en": "Village A", "ru": "Село А", "kk": "А ауылы"},
            "district": "Invented District",
            "kind": "village",
            "lat": 43.0,
            "lon": 75.0,
        }
    ],
    "incidents": [
        {
            "slug": "night-attack",
            "title": {"en": "Night attack on Village A"},
            "description": {"en": "Invented incident for tests."},
            "start": "2020-02-07T21:00",
            "end": "2020-02-08",
            "precision": "approximate",
            "places": ["village-a"],
            "violation_types": ["arson"],
            "figures": {"killed": 2, "injured": 5},
            "figures_note": "Invented figures.",
            "sources": [
                {
                    "title": "Invented report",
                    "publisher": "Nobody",
                    "url": "https://example.org/report",
                    "language": "en",
                    "date": "2020-05",
                }
            ],
            "related": [{"incident": "unrest", "relation": "part_of"}],
        },
        {
            "slug": "unrest",
            "title": {"en": "Unrest", "ru": "Беспорядки"},
            "description": {"en": "Invented umbrella incident."},
            "start": "2020-02",
            "precision": "month",
            "places": ["village-a"],
            "violation_types": ["violence"],
            "sources": [],
        },
    ],
}


def _both_files() -> list[Path]:
    missing = [p for p in (VOCABULARY, KORDAY) if not p.exists()]
    assert not missing, "the catalogue files must ship with the code: %s" % missing
    return [VOCABULARY, KORDAY]


def test_the_korday_dataset_validates_and_is_complete():
    vocabulary = json.loads(VOCABULARY.read_text())
    validate(vocabulary)
    korday = json.loads(KORDAY.read_text())
    validate(korday, known_types={t["slug"] for t in vocabulary["violation_types"]})
    slugs = {i["slug"] for i in korday["incidents"]}
    assert len(slugs) >= 15
    starts = sorted(i["start"] for i in korday["incidents"])
    assert starts[0].startswith("2020-02-05") and starts[-1] >= "2020-04"
    places = {p["slug"] for p in korday["places"]}
    for village in ("masanchi", "sortobe"):
        assert any(village in slug for slug in places), village
    for incident in korday["incidents"]:
        assert incident["places"] and incident["violation_types"], incident["slug"]
    labels = [t["labels"] for t in vocabulary["violation_types"]]
    assert all(label["kk"] and label["ru"] and label["en"] for label in labels)
    required = {"killing", "torture", "arson", "death-in-custody", "communications-shutdown"}
    flat = " ".join(t["slug"] for t in vocabulary["violation_types"])
    assert all(word.split("-")[0] in flat for word in required)


def test_korday_import_is_idempotent_and_round_trips(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    with desk.db.transaction() as session:
        for path in _both_files():
            load_file(session, path, "operator")
        first = export_document(session)
        events = session.scalar(select(func.count()).select_from(AuditEvent))
    with desk.db.transaction() as session:
        for path in _both_files():
            assert not load_file(session, path, "operator").changed
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == events
    # Into a second instance: what export wrote, import reads back identically.
    other = make_desk(tmp_path / "other", monkeypatch)
    with other.db.transaction() as session:
        import_document(session, copy.deepcopy(first), "operator")
        assert export_document(session) == first
    desk.close()
    other.close()


def test_the_cli_imports_and_exports(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    source = tmp_path / "mini.json"
    source.write_text(json.dumps(MINI))
    env = {
        "TESTIMONY_INSTANCE_PATH": str(desk.settings.instance_path),
        "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
        "TESTIMONY_ARGON2_TIME_COST": "1",
        "PATH": "/usr/bin:/bin",
        **database_env(desk.settings.instance_path),
    }
    command = [sys.executable, "-m", "review.cli", "incidents"]
    done = subprocess.run(
        command + ["import", str(source)], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert "2 incident" in done.stdout
    again = subprocess.run(
        command + ["import", str(source)], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert "created 0 place, 0 violation_type, 0 incident" in again.stdout
    out = tmp_path / "out.json"
    subprocess.run(command + ["export", "--out", str(out)], env=env, check=True, cwd=ROOT)
    exported = json.loads(out.read_text())
    assert [i["slug"] for i in exported["incidents"]] == ["unrest", "night-attack"]
    assert exported["incidents"][1]["related"] == [{"incident": "unrest", "relation": "part_of"}]
    broken = dict(MINI, incidents=[dict(MINI["incidents"][1], places=["nowhere"], start="7 Feb")])
    source.write_text(json.dumps(broken))
    failed = subprocess.run(
        command + ["import", str(source)], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert failed.returncode == 1
    assert "start" in failed.stderr
    desk.close()


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d["incidents"][0].update(places=["atlantis"]), "unknown place atlantis"),
        (lambda d: d["incidents"][0].update(violation_types=["flood"]), "unknown violation type"),
        (
            lambda d: d["incidents"][0].update(
                related=[{"incident": "x-y", "relation": "part_of"}]
            ),
            "unknown related incident",
        ),
        (lambda d: d["incidents"].append(copy.deepcopy(d["incidents"][1])), "duplicate incident"),
        (lambda d: d["incidents"][0].update(precision="roughly"), "precision"),
        (lambda d: d["incidents"][0]["figures"].update(killed=-1), "figures"),
    ],
)
def test_invalid_catalogues_are_refused_with_the_reason(change, message):
    document = copy.deepcopy(MINI)
    change(document)
    with pytest.raises(CatalogueError, match=message):
        validate(document)


def test_an_edit_through_import_is_audited_with_the_previous_value(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    with desk.db.transaction() as session:
        import_document(session, copy.deepcopy(MINI), "operator")
    changed = copy.deepcopy(MINI)
    changed["incidents"][0]["figures"]["killed"] = 3
    with desk.db.transaction() as session:
        result = import_document(session, changed, "operator")
        assert result.updated["incident"] == 1
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "incident.update")
        ).one()
    assert json.loads(event.details)["previous"]["figures"]["killed"] == 2
    desk.close()


def _linked_desk(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    with desk.db.transaction() as session:
        import_document(session, copy.deepcopy(MINI), "operator")
    admin = desk.add_reviewer("aigerim", admin=True)
    intake = desk.intake_app.test_client()
    codes = [
        receipt_code(
            submit(
                intake,
                statement="Invented %d: the barn burned at night." % n,
                when_date="2020-02-0%d" % (9 - n),
            )
        )
        for n in range(4)
    ]
    assert all(codes)
    return desk, desk.logged_in(admin)


def _link(
    client, testimony_id, role="eyewitness", confidence="high", passage="", incident="night-attack"
):
    return client.post(
        "/testimony/%d/links" % testimony_id,
        data={"incident": incident, "role": role, "confidence": confidence, "passage": passage},
    )


def _count(desk) -> int:
    with desk.db.sessions() as session:
        incident = session.scalar(select(Incident).where(Incident.slug == "night-attack"))
        return corroboration(session).get(incident.id, 0)


def test_corroboration_counts_independent_witnesses_only(tmp_path, monkeypatch):
    desk, client = _linked_desk(tmp_path, monkeypatch)
    _link(client, 1)
    _link(client, 1, role="victim")  # linking again updates, never counts twice
    _link(client, 2, role="relative", confidence="medium")
    _link(client, 3, role="hearsay")
    _link(client, 4, confidence="low")
    assert _count(desk) == 2
    client.post("/testimony/2/status", data={"status": "not_credible"})
    assert _count(desk) == 1
    page = client.get("/incidents/night-attack").data.decode()
    assert 'id="corroborating">1<' in page
    order = [page.index("Testimony %d" % n) for n in (4, 3, 2, 1)]
    assert order == sorted(order), "the timeline follows the dates the witnesses gave"
    client.post("/testimony/1/links/night-attack/remove")
    assert _count(desk) == 0
    actions = desk.audit_actions()
    assert actions.count("link.add") == 4 and "link.update" in actions
    assert "link.remove" in actions and desk.audit_ok()
    desk.close()


def test_a_supporting_passage_must_come_from_the_statement_and_stays_sealed(tmp_path, monkeypatch):
    desk, client = _linked_desk(tmp_path, monkeypatch)
    refused = _link(client, 1, passage="words the witness never wrote")
    assert "mapping_error=passage" in refused.location
    crafted = client.get("/testimony/1?mapping_error=Call+this+number").data.decode()
    assert "Call this number" not in crafted
    with desk.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Testimony)) == 4
    _link(client, 1, passage="the barn  burned\nat night")
    page = client.get("/testimony/1").data.decode()
    assert "the barn  burned" in page or "the barn burned" in page
    assert b"barn  burned\nat night" not in desk.database_bytes()
    assert b"barn" not in desk.database_bytes()
    desk.close()


def test_tags_are_saved_and_reported_on_the_incident(tmp_path, monkeypatch):
    desk, client = _linked_desk(tmp_path, monkeypatch)
    _link(client, 1)
    _link(client, 2)
    client.post("/testimony/1/tags", data={"tag": ["arson", "violence"]})
    client.post("/testimony/2/tags", data={"tag": ["arson", "unknown-tag"]})
    page = client.get("/testimony/1").data.decode()
    assert page.count("checked") == 2
    incident = client.get("/incidents/night-attack").data.decode()
    assert "Arson: 2" in incident and "Violence: 1" in incident
    assert "tags.update" in desk.audit_actions()
    desk.close()


def test_only_admins_edit_the_catalogue_and_edits_keep_the_previous_value(tmp_path, monkeypatch):
    desk, admin = _linked_desk(tmp_path, monkeypatch)
    plain = desk.logged_in(desk.add_reviewer("bolat"))
    form = {
        "title_en": "Night attack",
        "description_en": "Changed.",
        "start": "2020-02-07",
        "precision": "day",
        "figures": '{"killed": 3}',
        "places": ["village-a"],
        "sources": "Invented report | Nobody | https://example.org/report",
    }
    assert plain.post("/incidents/night-attack/edit", data=form).status_code == 403
    assert plain.get("/incidents/new").status_code == 403
    assert plain.post("/catalogue/places", data={"slug": "x"}).status_code == 403
    bad = admin.post("/incidents/night-attack/edit", data={**form, "figures": "{oops"})
    assert bad.status_code == 400 and "Figures must be" in bad.data.decode()
    assert admin.post("/incidents/night-attack/edit", data=form).status_code == 302
    with desk.db.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "incident.update")
        ).one()
        details = json.loads(event.details)
    assert details["previous"]["figures"] == {"killed": 2, "injured": 5}
    assert details["new"]["figures"] == {"killed": 3}
    desk.close()


def test_the_inbox_filters_by_incident_and_violation_and_counts_links(tmp_path, monkeypatch):
    desk, client = _linked_desk(tmp_path, monkeypatch)
    _link(client, 1)
    _link(client, 3, incident="unrest")
    _link(client, 3)
    client.post("/testimony/2/tags", data={"tag": ["arson"]})

    def listed(query: str) -> list[int]:
        html = client.get("/?" + query).data.decode()
        return sorted(int(n) for n in __import__("re").findall(r'/testimony/(\d+)"', html))

    assert listed("incident=night-attack") == [1, 3]
    assert listed("incident=unrest") == [3]
    assert listed("tag=arson") == [2]
    assert listed("incident=night-attack&tag=arson") == []
    row = client.get("/?incident=unrest").data.decode()
    assert "<td>0</td><td>2</td><td></td></tr>" in row.replace("\n", "")  # two links
    desk.close()


def test_the_witness_form_places_are_gazetteer_places():
    from store.vocabulary import PLACES

    gazetteer = {p["slug"] for p in json.loads(KORDAY.read_text())["places"]}
    assert set(PLACES) - {"other"} <= gazetteer


def test_catalogue_errors_are_shown_but_links_cannot_forge_one(tmp_path, monkeypatch):
    desk, admin = _linked_desk(tmp_path, monkeypatch)
    page = admin.post(
        "/catalogue/places", data={"slug": "x-y", "lat": "north", "lon": "1"}, follow_redirects=True
    ).data.decode()
    assert "Give coordinates in degrees." in page
    forged = admin.get("/catalogue/?error=Call+this+number").data.decode()
    assert "Call this number" not in forged
    ok = admin.post(
        "/catalogue/places",
        data={
            "slug": "village-a",
            "name_en": "Village A",
            "name_ru": "Село А",
            "name_kk": "А ауылы",
            "district": "Other District",
            "kind": "village",
            "lat": "43.1",
            "lon": "75.1",
        },
    )
    assert ok.status_code == 302
    with desk.db.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "place.update")).one()
    assert json.loads(event.details)["previous"]["district"] == "Invented District"
    desk.close()
