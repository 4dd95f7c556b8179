"""Who may reach what, walked from both apps' URL maps so that a route added later is
covered without touching this file.

Every review route, with every method it accepts (and a few it does not), is requested in
each partial state a thief or a half-finished login can leave behind: no cookie, the
right password with a wrong code, a complete login whose server copy was deleted, a
tampered cookie key, an idle-expired session, a logged-out cookie, a disabled reviewer.
None may show anything of the desk or change the database. Administrator routes are the
ones marked with :func:`review.roles.admin_only`; each refuses every other reviewer, and
a route that refuses non-administrators some other way, or that the templates show only
to administrators without the mark, fails a test. The intake serves none of it.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
import pytest
from jinja2 import nodes
from sqlalchemy import delete, update

from review.roles import is_admin_only
from store.models import Reviewer, ReviewSession

from .adversarial_helpers import seeded_desk, static_files, url_for_rule
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
