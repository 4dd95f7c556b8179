"""Markup, template syntax, SQL, bidi overrides and control characters typed into every
free-text field of both faces are stored as typed and shown as text on every page.

A witness's statement, rough date, place and contact, a file name, an addition; a
reviewer's note, reply, supporting passage and search; an administrator's incident title,
description, figures note and sources, place names and vocabulary labels: each carries
the payload below. Then every HTML page of both URL maps is fetched and must hold none of
its markup unescaped, while the pages that show the fields hold it escaped, literally.
Everything here is invented.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import inspect

from .adversarial_helpers import seeded_desk, url_for_rule
from .intake_helpers import jpeg, receipt_code

PAYLOAD = (
    "<script>alert('xss')</script><b id=\"canary\">bold</b>"
    "<img src=x onerror=alert(1)> {{7*7}} {% if 1 %}jinja{% endif %} "
    "'; DROP TABLE testimony; -- \u202egnp.exe ${7*7} &amp;"
)
RAW = ["<script>alert", '<b id="canary">', "<img src=x"]
SHOWN = [
    "&lt;script&gt;alert(",
    "&lt;b id=&#34;canary&#34;&gt;",
    "{{7*7}}",
    "{% if 1 %}jinja{% endif %}",
    "DROP TABLE testimony",
    "\u202egnp.exe",
    "&amp;amp;",
]
CONTROL = "\x1b[31m\x08\x7f"


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    seeded = seeded_desk(tmp_path, monkeypatch)
    yield seeded
    seeded.desk.close()


def _fill(seeded) -> str:
    """The payload into every free-text field; returns the second witness's receipt."""
    desk = seeded.desk
    intake = desk.intake_app.test_client()
    response = intake.post(
        "/en/testimony/",
        content_type="multipart/form-data",
        data={
            "statement": PAYLOAD,
            "when_approx": PAYLOAD[:200],
            "place_other": PAYLOAD[:200],
            "contact": PAYLOAD,
            "relation": "saw",
            "consent": "quotes",
            "files": [(io.BytesIO(jpeg()), PAYLOAD[:120] + ".jpg")],
        },
    )
    receipt = receipt_code(response)
    assert receipt, response.get_data(as_text=True)
    added = intake.post("/en/receipt/add", data={"receipt": receipt, "statement": PAYLOAD})
    assert added.status_code == 200
    admin = desk.logged_in(seeded.admin)
    for path, data in (
        ("/testimony/2/note", {"note-text": PAYLOAD + CONTROL}),
        ("/testimony/2/reply", {"reply-text": PAYLOAD + CONTROL}),
        (
            "/testimony/2/links",
            {
                "incident": seeded.incident,
                "role": "victim",
                "confidence": "low",
                "passage": PAYLOAD[:60],
            },
        ),
        (
            "/incidents/new",
            {
                "slug": "invented-incident",
                "title_en": PAYLOAD,
                "description_en": PAYLOAD,
                "start": "2020-02-07",
                "precision": "day",
                "figures": '{"killed": 1}',
                "figures_note": PAYLOAD,
                "sources": PAYLOAD.replace("|", "/") + " | Invented press",
            },
        ),
        (
            "/catalogue/places",
            {
                "slug": "invented-place",
                "name_en": PAYLOAD,
                "name_ru": PAYLOAD,
                "name_kk": PAYLOAD,
                "district": PAYLOAD,
                "lat": "43.1",
                "lon": "75.2",
            },
        ),
        (
            "/catalogue/vocabulary",
            {
                "slug": "invented-type",
                "label_en": PAYLOAD,
                "label_ru": PAYLOAD,
                "label_kk": PAYLOAD,
            },
        ),
    ):
        response = admin.post(path, data=data)
        assert response.status_code == 302, (path, response.status_code)
        assert "error" not in (response.location or ""), (path, response.location)
    return receipt


def _assert_inert(html: str, where) -> None:
    for raw in RAW:
        assert raw not in html, (where, raw)
    assert "jinja{% endif %}" in html or "{% if 1 %}" not in html, where  # not run


def test_every_page_of_both_faces_shows_hostile_text_as_text(seeded):
    desk = seeded.desk
    receipt = _fill(seeded)
    admin = desk.logged_in(seeded.admin)
    arguments = {
        **seeded.arguments,
        "testimony_id": "2",
        "attachment_id": "2",
        "slug": "invented-incident",
        "excerpt_id": "1",
    }
    pages = {}
    for rule in desk.review_app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint != "static":
            path = url_for_rule(rule, arguments)
            response = admin.get(path)
            if response.mimetype == "text/html":
                pages[path] = response.get_data(as_text=True)
    pages["search"] = admin.get("/search/", query_string={"q": PAYLOAD[:150]}).get_data(
        as_text=True
    )
    pages["contact"] = admin.post("/testimony/2/contact").get_data(as_text=True)
    intake = desk.intake_app.test_client()
    pages["thread"] = intake.post("/en/receipt/", data={"receipt": receipt}).get_data(as_text=True)
    refused = intake.post(
        "/en/testimony/",
        content_type="multipart/form-data",
        data={
            "statement": PAYLOAD,
            "contact": PAYLOAD,
            "relation": "saw",
            "consent": "counts",
            "files": [(io.BytesIO(b"<svg/>"), PAYLOAD[:100] + ".svg")],
        },
    )
    assert refused.status_code == 400
    pages["witness form sent back"] = refused.get_data(as_text=True)
    assert len(pages) >= 12
    for where, html in pages.items():
        _assert_inert(html, where)
    for where in (
        "/testimony/2",
        "/incidents/invented-incident",
        "contact",
        "thread",
        "witness form sent back",
        "/catalogue/",
        "search",
    ):
        shown = [text for text in SHOWN if text in pages[where]]
        assert len(shown) >= 5, (where, set(SHOWN) - set(shown))
    assert CONTROL in pages["/testimony/2"]  # kept as typed, inert in text
    # The SQL was data: every table is still there.
    with desk.db.sessions() as session:
        tables = set(inspect(session.connection()).get_table_names())
    assert {"testimony", "statement", "note", "incident"} <= tables
