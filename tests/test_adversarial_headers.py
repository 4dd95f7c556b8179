"""Every answer of both faces carries the strict headers of store/web.py: every route of
both URL maps with every method it accepts and some it refuses, logged in and not, every
static file, and the error answers 400, 401, 403, 404, 405, 413, 429, 500 and 503. An
error page is where headers are most often forgotten, and where a stack trace or SQL
would leak; neither may appear. Everything here is invented.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select, update

from intake import create_app as create_intake
from store.models import BlobChunk, Recipient, Statement
from store.web import SECURITY_HEADERS

from .adversarial_helpers import seeded_desk, static_files, url_for_rule
from .intake_helpers import submit

LEAKS = ("Traceback", "sqlalchemy", "SELECT ", 'File "', "Werkzeug", "werkzeug")


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    seeded = seeded_desk(tmp_path, monkeypatch)
    yield seeded
    seeded.desk.close()


class Seen:
    def __init__(self) -> None:
        self.statuses: set[int] = set()
        self.count = 0

    def check(self, response, where) -> None:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (where, response.status_code, name)
        assert "Server" not in response.headers, where
        if response.status_code >= 400 and response.mimetype == "text/html":
            body = response.get_data(as_text=True)
            assert not any(leak in body for leak in LEAKS), (where, response.status_code)
        self.statuses.add(response.status_code)
        self.count += 1


def _walk(app, client, arguments, seen: Seen, who: str) -> None:
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.rule))
    for rule in rules:
        paths = static_files(app) if rule.endpoint == "static" else [url_for_rule(rule, arguments)]
        for path in paths:
            for method in sorted(rule.methods | {"PUT", "DELETE"}):
                seen.check(client.open(path, method=method), (who, method, path))


def test_every_route_and_file_of_both_faces_sends_the_strict_headers(seeded):
    desk = seeded.desk
    seen = Seen()
    arguments = {**seeded.arguments, "lang": "kk"}
    _walk(desk.intake_app, desk.intake_app.test_client(), arguments, seen, "witness")
    _walk(desk.review_app, desk.review_app.test_client(), arguments, seen, "anonymous")
    _walk(desk.review_app, desk.logged_in(seeded.reviewer), arguments, seen, "reviewer")
    _walk(desk.review_app, desk.logged_in(seeded.admin), arguments, seen, "admin")
    for face in (desk.intake_app, desk.review_app):
        seen.check(face.test_client().get("/no/such/page"), "404")
    assert {200, 302, 400, 401, 403, 404, 405} <= seen.statuses, seen.statuses
    assert seen.count > 300


def test_error_answers_send_the_strict_headers_and_leak_nothing(seeded):
    desk = seeded.desk
    seen = Seen()

    # 413: a body over each face's ceiling.
    small = create_intake(desk.settings)
    small.config.update(TESTING=True, WTF_CSRF_ENABLED=False, MAX_CONTENT_LENGTH=4096)
    seen.check(submit(small.test_client(), files=[("a.mp3", b"ID3" + bytes(8192))]), "413 w")
    seen.check(
        desk.logged_in(seeded.admin).post(
            "/testimony/1/note", data={"note-text": "x" * (3 * 1024 * 1024)}
        ),
        "413 review",
    )
    small.extensions["testimony_db"].dispose()

    # 429: the budgets spent.
    client = desk.review_app.test_client()
    for _ in range(11):
        response = client.post(
            "/login",
            data={"name": "nobody", "password": "x" * 12, "code": "123456"},
            environ_base={"REMOTE_ADDR": "192.0.2.99"},
        )
    seen.check(response, "429 review")
    busy = create_intake(desk.settings.with_changes(submissions_per_hour=1))
    busy.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    witness = busy.test_client()
    submit(witness)
    seen.check(submit(witness), "429 witness")
    for _ in range(21):
        response = witness.post(
            "/en/receipt/", data={"receipt": "1234"}, environ_base={"REMOTE_ADDR": "192.0.2.98"}
        )
    seen.check(response, "429 receipt")
    busy.extensions["testimony_db"].dispose()

    # 400: a form without its CSRF token.
    desk.review_app.config["WTF_CSRF_ENABLED"] = True
    seen.check(
        desk.logged_in(seeded.admin).post("/testimony/1/status", data={"status": "new"}), "400 csrf"
    )
    desk.review_app.config["WTF_CSRF_ENABLED"] = False
    seen.check(
        desk.intake_app.test_client().post(
            "/en/testimony/",
            data=b"--b\r\ntruncated",
            content_type="multipart/form-data; boundary=b",
        ),
        "400 witness",
    )

    # 500: a sealed statement altered in the database; the page fails closed.
    with desk.db.transaction() as session:
        blob_id = session.scalars(select(Statement.blob_id)).first()
        chunk = session.scalars(select(BlobChunk).where(BlobChunk.blob_id == blob_id)).first()
        chunk.data = bytes(b ^ 0xFF for b in chunk.data)
    desk.review_app.testing = False
    try:
        seen.check(desk.logged_in(seeded.admin).get("/testimony/1"), "500 review")
    finally:
        desk.review_app.testing = True

    # 503: nobody to seal to.
    with desk.db.transaction() as session:
        session.execute(update(Recipient).values(active=False))
    seen.check(submit(desk.intake_app.test_client()), "503 witness")
    seen.check(desk.intake_app.test_client().get("/ru/testimony/"), "503 page")
    assert {400, 413, 429, 500, 503} <= seen.statuses, seen.statuses


def test_a_file_part_to_a_review_page_is_answered_with_the_headers(seeded):
    response = seeded.desk.review_app.test_client().post(
        "/login",
        data={"name": "x", "file": (io.BytesIO(b"invented"), "a.bin")},
        content_type="multipart/form-data",
    )
    Seen().check(response, "file part")
