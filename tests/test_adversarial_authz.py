"""Who may reach what, walked from both apps' URL maps so that a route added later is
covered without touching this file.

Every review route, with every method it accepts (and a few it does not), is requested in
each partial state a thief or a half-finished login can leave behind: no cookie, the
right password with a wrong code, a complete login whose server copy was deleted, a
tampered cookie key, an idle-expired session, a logged-out cookie, a disabled reviewer.
None may show anything of the desk or change the database. Administrator routes are the
ones marked with :func:`review.roles.admin_only`; each refuses every other reviewer, and
a route that refuses non-administrators some other way, or that the templates show only
to administrators without the mark, fails a test. A reviewer (administrator or not)
logged in but never shared a testimony gets 403 from every route that names it, one of
its files or one of its excerpts, for every method, and changes nothing. The intake
serves none of it.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import jinja2
import pytest
from jinja2 import nodes
from sqlalchemy import delete, select, update

from review.access import NOT_SHARED, may_open
from review.roles import is_admin_only
from store.models import (
    Excerpt,
    Message,
    Note,
    Reviewer,
    ReviewSession,
    Testimony,
    TestimonyIncident,
    TestimonyViolation,
)

from .adversarial_helpers import (
    CONTACT,
    NOTE,
    REPLY,
    STATEMENT,
    seeded_desk,
    static_files,
    url_for_rule,
)
from .review_helpers import session_cookie

EXTRA_METHODS = {"PUT", "DELETE", "PATCH"}
FORM = {
    "status": "withdrawn",
    "reviewer": "2",
    "note-text": "Invented note by a thief",
    "reply-text": "Invented reply by a thief",
    "role": "victim",
    "confidence": "low",
    "tag": "killing",
    "passage": "",
    "slug": "invented-place",
    "title_en": "Invented",
    "description_en": "Invented",
    "start": "2020-02-07",
    "precision": "day",
    "name_en": "X",
    "name_ru": "X",
    "name_kk": "X",
    "district": "X",
    "lat": "43",
    "lon": "75",
    "label_en": "X",
    "label_ru": "X",
    "label_kk": "X",
}
# Pages every reviewer may open although only administrators get a link in the menu.
OPEN_TO_EVERY_REVIEWER = {
    "catalogue.overview": "the places and the vocabulary are read "
    "by every reviewer when tagging; only the edit forms are admin"
}


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    seeded = seeded_desk(tmp_path, monkeypatch)
    seeded.form = {**FORM, "incident": seeded.incident}
    yield seeded
    seeded.desk.close()


def _requests(app, arguments):
    """(method, path, endpoint) for every rule and method, logout last."""
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.rule))
    for rule in rules:
        path = url_for_rule(rule, arguments)
        if rule.endpoint == "static":
            path = static_files(app)[0]
        for method in sorted(rule.methods | EXTRA_METHODS):
            yield method, path, rule.endpoint


def _assert_refused_everywhere(seeded, client, state: str) -> int:
    desk = seeded.desk
    client.get("/")  # an expired or orphaned server copy is deleted on first sight
    before = desk.dump()
    walked = 0
    for method, path, endpoint in _requests(desk.review_app, seeded.arguments):
        if endpoint in ("auth.login", "static"):
            continue
        response = client.open(path, method=method, data=seeded.form)
        where = (state, method, path, response.status_code)
        if response.status_code == 302:
            assert method == "GET" and response.location.startswith("/login"), where
        else:
            assert response.status_code in (401, 404, 405), where
        body = response.get_data(as_text=True)
        assert not any(secret in body for secret in seeded.secrets()), where
        walked += 1
    assert desk.dump() == before, state
    return walked


def test_no_review_route_answers_any_partial_login(seeded):
    desk, alma = seeded.desk, seeded.admin
    app = desk.review_app

    # The control: with a complete login every page opens, so the walk below is not
    # refused for some other reason.
    owner = desk.logged_in(alma)
    for method, path, endpoint in _requests(app, seeded.arguments):
        if method == "GET":
            assert owner.get(path).status_code == 200, (path, endpoint)

    def fresh():
        return app.test_client()

    states = {"no cookie": fresh()}

    wrong_code = fresh()
    valid = {desk.clock.totp(alma.totp_secret, d) for d in (-60, -30, 0, 30, 60)}
    code = next(c for c in ("123456", "654321", "111222") if c not in valid)
    assert desk.login(wrong_code, alma, code=code).status_code == 401
    assert session_cookie(wrong_code) is None
    states["right password, wrong code"] = wrong_code

    server_copy_gone = desk.logged_in(alma)
    with desk.db.transaction() as session:
        session.execute(delete(ReviewSession))
    states["password and code, server copy deleted"] = server_copy_gone

    tampered = fresh()
    session_id, key = session_cookie(desk.logged_in(alma)).split(".")
    raw = bytearray(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    raw[-1] ^= 0x80
    tampered.set_cookie(
        "review_session",
        session_id + "." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="),
    )
    states["cookie key tampered"] = tampered

    logged_out = desk.logged_in(alma)
    cookie = session_cookie(logged_out)
    assert logged_out.post("/logout").status_code == 302
    replayed = fresh()
    replayed.set_cookie("review_session", cookie)
    states["logged-out cookie replayed"] = replayed

    walked = {}
    for state, client in states.items():
        walked[state] = _assert_refused_everywhere(seeded, client, state)

    idle = desk.logged_in(alma)
    desk.clock.advance(minutes=desk.settings.review_idle_minutes, seconds=1)
    walked["idle past the timeout"] = _assert_refused_everywhere(
        seeded, idle, "idle past the timeout"
    )

    disabled = desk.logged_in(seeded.reviewer)
    with desk.db.transaction() as session:
        session.execute(
            update(Reviewer).where(Reviewer.id == seeded.reviewer.id).values(active=False)
        )
    walked["reviewer disabled"] = _assert_refused_everywhere(seeded, disabled, "reviewer disabled")
    rules = len(list(app.url_map.iter_rules()))
    assert all(n >= 5 * (rules - 2) for n in walked.values()), walked


# The route arguments that name a testimony or something of one (a file, an excerpt);
# the others name no testimony. A new kind of id in a route fails the walk below until
# it is sorted into one of the two.
TESTIMONY_ARGUMENTS = {"testimony_id", "attachment_id", "excerpt_id"}
OTHER_ID_ARGUMENTS = {"reviewer_id"}
TESTIMONY_ENDPOINTS = {
    "testimony.show",
    "testimony.reveal_contact",
    "testimony.set_status",
    "testimony.assign",
    "testimony.add_note",
    "testimony.reply",
    "testimony.working_copy",
    "testimony.original",
    "mapping.link",
    "mapping.unlink",
    "mapping.tags",
    "excerpts.new",
    "excerpts.edit",
    "excerpts.save_text",
    "excerpts.mask",
    "excerpts.keep",
    "excerpts.approve",
    "excerpts.delete",
}
# Plaintext of the seeded testimony, in any of its forms: none may reach an outsider.
PLAINTEXT = [STATEMENT, CONTACT, NOTE, REPLY, "grey van", "TestCam", "43.208333"]


def _testimony_rules(app) -> list:
    rules = []
    for rule in app.url_map.iter_rules():
        ids = set(re.findall(r"<int:(\w+)>", rule.rule))
        unsorted = ids - TESTIMONY_ARGUMENTS - OTHER_ID_ARGUMENTS
        assert not unsorted, (rule.rule, unsorted)
        if rule.arguments & TESTIMONY_ARGUMENTS:
            rules.append(rule)
    return rules


def _testimony_state(desk) -> dict[str, object]:
    """What a write to testimony 1 would change, read back from the database."""
    with desk.db.sessions() as session:
        item = session.get(Testimony, 1)

        def rows(*columns):
            return sorted(session.execute(select(*columns)).all())

        return {
            "status": item.status,
            "assigned_to": item.assigned_to,
            "tags": rows(TestimonyViolation.testimony_id, TestimonyViolation.violation_type_id),
            "links": rows(
                TestimonyIncident.testimony_id,
                TestimonyIncident.incident_id,
                TestimonyIncident.role,
                TestimonyIncident.confidence,
                TestimonyIncident.passage_blob_id,
            ),
            "excerpts": rows(Excerpt.id, Excerpt.status, Excerpt.blob_id),
            "messages": rows(Message.id, Message.blob_id),
            "notes": rows(Note.id, Note.blob_id),
        }


@pytest.mark.parametrize("admin", [False, True], ids=["reviewer", "administrator"])
def test_a_reviewer_not_shared_a_testimony_can_neither_read_nor_change_it(seeded, admin):
    """Logged in, but never granted: Chingiz joined after testimony 1 was sealed (with
    its file, note, reply, link and excerpt). Every route naming it, its file or its
    excerpt answers 403, for every method it accepts, and nothing changes; an
    administrator gets no exception. Once shared with him, the same pages open."""
    desk = seeded.desk
    app = desk.review_app
    rules = _testimony_rules(app)
    assert {rule.endpoint for rule in rules} == TESTIMONY_ENDPOINTS

    chingiz = desk.add_reviewer("chingiz", admin=admin)
    outsider = desk.logged_in(chingiz)
    with desk.db.sessions() as session:
        people = {p.name: p for p in session.scalars(select(Reviewer))}
        assert not may_open(session, people["chingiz"], 1)
        assert may_open(session, people["alma"], 1) and may_open(session, people["bolat"], 1)

    form = {
        **seeded.form,
        "reviewer": str(chingiz.id),
        "text": "Invented excerpt by an outsider",
        "key": "name:0",
        "reason": "Invented reason",
    }
    before, state = desk.dump(), _testimony_state(desk)
    refused = set()
    for rule in rules:
        path = url_for_rule(rule, seeded.arguments)
        for method in sorted(rule.methods | EXTRA_METHODS):
            response = outsider.open(path, method=method, data=form)
            where = (method, path, response.status_code)
            if method == "OPTIONS":
                assert response.status_code == 200 and not response.data, where
                continue
            if method not in rule.methods:
                assert response.status_code == 405, where
                continue
            assert response.status_code == 403, where
            body = response.get_data(as_text=True)
            assert not any(secret in body for secret in PLAINTEXT), where
            if method != "HEAD":
                assert str(NOT_SHARED) in body, where
            refused.add(rule.endpoint)
    assert refused == TESTIMONY_ENDPOINTS
    assert _testimony_state(desk) == state
    assert desk.dump() == before

    # The listing still shows the row (it shows no plaintext).
    assert outsider.get("/").status_code == 200

    # Alma shares what she can read; the same key now opens the testimony.
    alma = desk.logged_in(seeded.admin)
    assert alma.post("/reviewers/%d/grant" % chingiz.id).status_code == 302
    for path in ("/testimony/1", "/testimony/file/1/view", "/excerpts/1"):
        assert outsider.get(path).status_code == 200, path
    page = outsider.get("/testimony/1").get_data(as_text=True)
    assert STATEMENT in page and NOTE in page and REPLY in page


def test_a_missing_testimony_is_not_found_rather_than_refused(seeded):
    """404 for what does not exist, for anyone; 403 only for what exists."""
    desk = seeded.desk
    outsider = desk.logged_in(desk.add_reviewer("chingiz"))
    for method, path in (
        ("GET", "/testimony/999"),
        ("POST", "/testimony/999/status"),
        ("POST", "/testimony/999/links"),
        ("GET", "/testimony/file/999/view"),
        ("GET", "/excerpts/999"),
        ("POST", "/excerpts/999/delete"),
    ):
        assert outsider.open(path, method=method, data=seeded.form).status_code == 404, path


def _admin_endpoints(app) -> set[str]:
    return {endpoint for endpoint, view in app.view_functions.items() if is_admin_only(view)}


def test_administrator_routes_refuse_every_other_reviewer(seeded):
    desk = seeded.desk
    app = desk.review_app
    marked = _admin_endpoints(app)
    assert {
        "reviewers.disable",
        "incidents.create",
        "incidents.edit",
        "catalogue.save_place",
        "catalogue.save_type",
    } <= marked

    plain = desk.logged_in(seeded.reviewer)
    before = desk.dump()
    refused = set()
    for method, path, endpoint in _requests(app, seeded.arguments):
        if endpoint not in marked or method in EXTRA_METHODS | {"OPTIONS"}:
            continue
        response = plain.open(path, method=method, data=seeded.form)
        assert response.status_code == 403, (method, path, response.status_code)
        refused.add(endpoint)
    assert refused == marked
    assert desk.dump() == before

    admin = desk.logged_in(seeded.admin)
    for method, path, endpoint in _requests(app, seeded.arguments):
        if endpoint in marked and method == "GET":
            assert admin.get(path).status_code == 200, path


def test_a_route_refusing_non_administrators_is_marked_as_such(seeded):
    """Walk every route as an ordinary reviewer: whatever answers 403 must carry the
    mark, so the set of administrator routes tested above is the whole of it."""
    desk = seeded.desk
    app = desk.review_app
    marked = _admin_endpoints(app)
    plain = desk.logged_in(seeded.reviewer)
    forbidden = set()
    for method, path, endpoint in _requests(app, seeded.arguments):
        if endpoint in ("auth.logout", "reviewers.grant"):
            continue  # would end this session, or share keys: not a refusal either way
        if plain.open(path, method=method, data=seeded.form).status_code == 403:
            forbidden.add(endpoint)
    assert forbidden == marked


def _admin_gated_endpoints(app) -> tuple[set[str], set[str]]:
    """Endpoints the review templates link to only inside ``{% if reviewer.is_admin %}``,
    and those linked to anywhere else."""
    env = app.jinja_env
    folder = Path(app.root_path) / app.template_folder

    def is_admin_test(test) -> bool:
        return (
            isinstance(test, nodes.Getattr)
            and test.attr == "is_admin"
            and isinstance(test.node, nodes.Name)
            and test.node.name == "reviewer"
        )

    def endpoint(call) -> str | None:
        if (
            isinstance(call.node, nodes.Name)
            and call.node.name == "url_for"
            and call.args
            and isinstance(call.args[0], nodes.Const)
        ):
            return call.args[0].value
        return None

    gated, open_ = set(), set()

    def visit(node, inside: bool) -> None:
        if isinstance(node, nodes.If) and is_admin_test(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.else_ + node.elif_:
                visit(child, inside)
            return
        if isinstance(node, nodes.Call):
            name = endpoint(node)
            if name:
                (gated if inside else open_).add(name)
        for child in node.iter_child_nodes():
            visit(child, inside)

    for path in sorted(folder.rglob("*.html")):
        try:
            visit(env.parse(path.read_text(encoding="utf-8")), False)
        except jinja2.TemplateSyntaxError as exc:  # pragma: no cover - a broken template
            pytest.fail("%s: %s" % (path, exc))
    return gated, open_


def test_links_shown_only_to_administrators_lead_to_administrator_routes(seeded):
    app = seeded.desk.review_app
    gated, open_ = _admin_gated_endpoints(app)
    assert {"reviewers.disable", "incidents.create", "catalogue.save_place"} <= gated
    only_admin = gated - open_ - set(OPEN_TO_EVERY_REVIEWER)
    unmarked = only_admin - _admin_endpoints(app)
    assert not unmarked, (
        "shown only to administrators but open to every reviewer "
        "(mark the view with @admin_only): %s" % sorted(unmarked)
    )
    assert set(OPEN_TO_EVERY_REVIEWER) <= set(app.view_functions)


def test_the_intake_serves_no_review_path_or_file_with_any_method(seeded):
    desk = seeded.desk
    intake = desk.intake_app.test_client()
    review = desk.review_app
    paths = {
        url_for_rule(rule, seeded.arguments)
        for rule in review.url_map.iter_rules()
        if rule.endpoint != "static"
    }
    files = static_files(review)
    assert files and "/static/review.css" in files
    review_css = (Path(review.static_folder) / "review.css").read_bytes()
    for path in sorted(paths | set(files)):
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            response = intake.open(path, method=method, data=seeded.form, follow_redirects=True)
            where = (method, path, response.request.path, response.status_code)
            if path == "/" and method in ("GET", "HEAD"):  # the witness's welcome page
                assert response.status_code == 200 and response.request.path in (
                    "/ru/",
                    "/kk/",
                    "/en/",
                ), where
                continue
            if method == "OPTIONS" and response.status_code == 200:
                assert not response.data, where  # Flask's automatic answer: methods only
                continue
            assert response.status_code in (404, 405), where
            body = response.get_data()
            assert review_css[:200] not in body, where
            assert not any(s.encode() in body for s in seeded.secrets()), where
    # The intake's own static files are not the review side's either.
    for path in static_files(desk.intake_app):
        assert intake.get(path).get_data() != review_css
