"""The incident page names a relation from the side of the incident it is on, in English
and Russian: the incident that follows another reads "follows", the other "is followed
by" (never "is follows"). Everything here is invented."""

from __future__ import annotations

import copy

import pytest

from review.catalogue import INVERSE_RELATION_LABELS, RELATION_LABELS
from store.incidents import RELATIONS, import_document

from .review_helpers import make_desk
from .test_incidents import MINI


def _incident(slug: str, title: str, related: list[dict]) -> dict:
    return {
        "slug": slug,
        "title": {"en": title},
        "description": {"en": "Invented incident for tests."},
        "start": "2020-02-08",
        "precision": "day",
        "places": ["village-a"],
        "violation_types": ["arson"],
        "sources": [],
        "related": related,
    }


@pytest.fixture
def pages(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    document = copy.deepcopy(MINI)
    document["incidents"] += [
        _incident(
            "reprisal", "Invented reprisal", [{"incident": "night-attack", "relation": "follows"}]
        ),
        _incident("spark", "Invented spark", []),
    ]
    document["incidents"][0]["related"].append({"incident": "spark", "relation": "caused_by"})
    with desk.db.transaction() as session:
        import_document(session, document, "operator")
    client = desk.logged_in(desk.add_reviewer("aigerim"))

    def page(slug: str, lang: str = "en") -> str:
        response = client.get("/incidents/%s?lang=%s" % (slug, lang))
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        return html[html.index("<h2>", html.index('id="corroborating"')) :]

    yield page
    desk.close()


def test_every_relation_has_a_label_each_way():
    assert set(RELATION_LABELS) == set(INVERSE_RELATION_LABELS) == set(RELATIONS)


def test_each_side_of_a_relation_reads_as_english(pages):
    assert "follows: <a" in pages("reprisal")
    attack = pages("night-attack")
    assert "is followed by: <a" in attack and "Invented reprisal" in attack
    assert "part of: <a" in attack and "caused by: <a" in attack
    assert "includes: <a" in pages("unrest")
    assert "led to: <a" in pages("spark")
    for slug in ("reprisal", "night-attack", "unrest", "spark"):
        page = pages(slug)
        assert "is follows" not in page and "is part" not in page and "is caused" not in page


def test_relations_are_translated_on_the_russian_page(pages):
    attack = pages("night-attack", "ru")
    assert "за ним следует: <a" in attack and "is followed by" not in attack
    assert "часть события: <a" in attack
    assert "включает: <a" in pages("unrest", "ru")
