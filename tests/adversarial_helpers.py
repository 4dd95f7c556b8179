"""What the adversarial tests share: a desk where every route has something real to
show, URLs built from both apps' URL maps, and a count of every table's rows to prove
that a refused request wrote nothing.

Everything here is invented: names, statements, contacts, photos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from sqlalchemy import func, select

from store.incidents import load_file
from store.models import Base, Incident

from .intake_helpers import receipt_code, submit
from .review_helpers import Desk, Person, make_desk, photo_with_exif

DATA = Path(__file__).resolve().parent.parent / "store" / "data"
STATEMENT = "Invented statement: the Syvanov family saw a grey van near the Masanchi mosque."
CONTACT = "invented-contact-4410@example.org"
NOTE = "Invented note: compare with the Ma Dzhun-test account."
REPLY = "Invented question: which evening was it?"


@dataclass
class Seeded:
    """A desk with an administrator, a reviewer, the Korday catalogue and one testimony
    (a photo, a contact, a note, a reply, a link to an incident, an excerpt) so that a route's
    arguments can all name something that exists."""

    desk: Desk
    admin: Person
    reviewer: Person
    receipt: str
    incident: str

    @property
    def arguments(self) -> dict[str, str]:
        return {
            "testimony_id": "1",
            "attachment_id": "1",
            "reviewer_id": str(self.reviewer.id),
            "slug": self.incident,
            "excerpt_id": "1",
        }

    def secrets(self) -> list[str]:
        """What must never appear in an answer to someone not logged in."""
        return [STATEMENT, CONTACT, NOTE, REPLY, "TestCam", "43.208333", "Inbox"]


def seeded_desk(tmp_path: Path, monkeypatch, **env: str) -> Seeded:
    desk = make_desk(tmp_path, monkeypatch, **env)
    admin = desk.add_reviewer("alma", admin=True)
    reviewer = desk.add_reviewer("bolat")
    with desk.db.transaction() as session:
        for name in ("violation-types.json", "korday-2020.json"):
            load_file(session, DATA / name, "operator")
        incident = session.scalars(select(Incident.slug).order_by(Incident.id)).first()
    response = submit(
        desk.intake_app.test_client(),
        lang="en",
        statement=STATEMENT,
        contact=CONTACT,
        consent="quotes",
        files=[("photo.jpg", photo_with_exif())],
    )
    receipt = receipt_code(response)
    assert receipt, response.data
    client = desk.logged_in(admin)
    assert client.post("/testimony/1/note", data={"note-text": NOTE}).status_code == 302
    assert client.post("/testimony/1/reply", data={"reply-text": REPLY}).status_code == 302
    linked = client.post(
        "/testimony/1/links",
        data={
            "incident": incident,
            "role": "eyewitness",
            "confidence": "high",
            "passage": "grey van",
        },
    )
    assert linked.status_code == 302 and "mapping_error" not in linked.location
    excerpt = client.post("/testimony/1/excerpts/new", data={"text": "saw a grey van"})
    assert excerpt.status_code == 302 and excerpt.location.endswith("/excerpts/1"), excerpt
    return Seeded(desk, admin, reviewer, receipt, incident)


def url_for_rule(rule, arguments: dict[str, str], default: str = "1") -> str:
    """The rule's path with each argument filled from ``arguments`` (else ``default``)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        return arguments.get(name, default)

    return re.sub(r"<([^>]+)>", fill, rule.rule)


def static_files(app) -> list[str]:
    """Every file the app serves from its static folder, as URL paths."""
    folder = Path(app.static_folder)
    return sorted(
        "%s/%s" % (app.static_url_path, p.relative_to(folder).as_posix())
        for p in folder.rglob("*")
        if p.is_file()
    )


def table_counts(db) -> dict[str, int]:
    """Rows in every table of the schema."""
    with db.sessions() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, set[str]] = {}
        self._action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form" and (values.get("method") or "get").lower() == "post":
            self._action = values.get("action") or ""
            self.forms.setdefault(self._action, set())
        elif tag in ("input", "textarea", "select") and self._action is not None:
            if values.get("name"):
                self.forms[self._action].add(values["name"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._action = None


def post_forms(html: str, here: str = "") -> dict[str, set[str]]:
    """Every POST form in ``html``: its action (``here`` when it has none) and the names
    of its fields."""
    parser = _Forms()
    parser.feed(html)
    return {action or here: names for action, names in parser.forms.items()}


def every_form(app, pages: dict[str, str], arguments: dict[str, str]) -> dict[str, list[str]]:
    """The POST forms on ``pages`` (path: html) and every POST route of the URL map that
    no page links to (with every field name seen anywhere): action -> field names."""
    found: dict[str, set[str]] = {}
    for path, html in pages.items():
        for action, names in post_forms(html, path).items():
            found.setdefault(action, set()).update(names)
    seen = set().union(*found.values()) if found else set()
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods:
            found.setdefault(url_for_rule(rule, arguments), set(seen))
    return {action: sorted(names) for action, names in found.items()}


# --- hostile text everywhere, for the browser and export checks -----------------------------

# Each piece that could run sets window.__pwned (and opens a dialog); none must.
HOSTILE = (
    "\"'><script>window.__pwned='script';alert(1)</script>"
    "<img src=x onerror=\"window.__pwned='img';alert(2)\">"
    "<svg onload=\"window.__pwned='svg'\"></svg> {{7*7}} {% if 1 %}jinja{% endif %} "
    '\'; DROP TABLE testimony; -- \u202egnp.exe "quoted, with comma"'
)
CONTROL = "\x1b[31m\x08\x7f"
HOSTILE_SHOWN = (
    "<script>window.__pwned=",
    "<img src=x onerror=",
    "{{7*7}}",
    "{% if 1 %}jinja{% endif %}",
    "DROP TABLE testimony",
)


@dataclass
class Hostile:
    """A desk whose every free-text field holds :data:`HOSTILE`: a witness's statement,
    contact and file name, a reviewer's note, reply, passage and approved excerpt, an
    incident's title and description, a place's name and a violation type's label (each
    of the last four starting a spreadsheet formula), counted often enough to be
    published. ``viewer`` is an administrator who has never logged in (for a browser on
    the real clock)."""

    desk: Desk
    admin: Person
    viewer: Person
    receipt: str
    excerpt_id: int


INCIDENT, PLACE, VIOLATION = "invented-incident", "invented-place", "invented-type"
FORMULAS = {
    "title": '=HYPERLINK("http://example.invalid") ',
    "description": "+1+2 ",
    "place": "-3+4 ",
    "label": "@SUM(1) ",
    "excerpt": "=2+5 ",
}
EXCERPT = FORMULAS["excerpt"] + HOSTILE + "\nA second line, \"quoted\"\r\n=cmd|' /C calc'!A0"


def hostile_desk(tmp_path: Path, monkeypatch) -> Hostile:
    import datetime as dt
    import io

    from .export_helpers import add_testimonies, load_catalogue
    from .intake_helpers import jpeg

    desk = make_desk(tmp_path, monkeypatch)
    admin = desk.add_reviewer("alma", admin=True)
    viewer = desk.add_reviewer("Aisha Primerova-test", admin=True)
    load_catalogue(desk.db)
    client = desk.logged_in(admin)
    for path, data in (
        (
            "/catalogue/places",
            {
                "slug": PLACE,
                "name_en": FORMULAS["place"] + HOSTILE,
                "name_ru": HOSTILE,
                "name_kk": HOSTILE,
                "district": HOSTILE,
                "lat": "43.1",
                "lon": "75.2",
            },
        ),
        (
            "/catalogue/vocabulary",
            {
                "slug": VIOLATION,
                "label_en": FORMULAS["label"] + HOSTILE,
                "label_ru": HOSTILE,
                "label_kk": HOSTILE,
            },
        ),
        (
            "/incidents/new",
            {
                "slug": INCIDENT,
                "title_en": FORMULAS["title"] + HOSTILE,
                "description_en": FORMULAS["description"] + HOSTILE,
                "start": "2020-02-07",
                "precision": "day",
                "figures": '{"killed": 1}',
                "figures_note": HOSTILE,
                "sources": HOSTILE.replace("|", "/") + " | Invented press",
                "places": PLACE,
                "violation_types": VIOLATION,
            },
        ),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 302 and "error" not in (response.location or ""), (
            path,
            response.status_code,
            response.location,
        )
    response = desk.intake_app.test_client().post(
        "/en/testimony/",
        content_type="multipart/form-data",
        data={
            "statement": HOSTILE,
            "when_approx": HOSTILE[:200],
            "place_other": HOSTILE[:200],
            "contact": HOSTILE,
            "relation": "saw",
            "consent": "quotes",
            "files": [(io.BytesIO(jpeg()), HOSTILE[:100] + ".jpg")],
        },
    )
    receipt = receipt_code(response)
    assert receipt, response.get_data(as_text=True)
    for path, data in (
        ("/testimony/1/note", {"note-text": HOSTILE + CONTROL}),
        ("/testimony/1/reply", {"reply-text": HOSTILE + CONTROL}),
        (
            "/testimony/1/links",
            {"incident": INCIDENT, "role": "eyewitness", "confidence": "low", "passage": HOSTILE},
        ),
        ("/testimony/1/tags", {"tag": VIOLATION}),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 302 and "error" not in response.location, (path, response)
    made = client.post("/testimony/1/excerpts/new", data={"text": EXCERPT})
    assert made.status_code == 302, made.data
    excerpt_id = int(made.location.rstrip("/").split("/")[-1])
    approved = client.post("/excerpts/%d/approve" % excerpt_id)
    assert approved.status_code == 302, approved.data
    # Enough others like it that the hostile place, type and incident are published.
    add_testimonies(
        desk.db,
        6,
        PLACE,
        "saw",
        dt.date(2020, 2, 10),
        INCIDENT,
        "eyewitness",
        (VIOLATION,),
        consent="quotes",
    )
    return Hostile(desk, admin, viewer, receipt, excerpt_id)
