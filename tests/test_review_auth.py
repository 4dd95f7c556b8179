"""Who may use the review face, and what a stolen piece of a session is worth.

The routes checked are read from the review app's URL map, so a route added later is
covered without touching this file. Logins use real TOTP codes on a test clock
(:func:`review.sessions.now` is replaced), so replays and timeouts can be tested without
waiting. Everything here is invented."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete, func, select

import crypto
from review import accounts
from store.models import Reviewer, ReviewSession, Testimony
from store.web import SECURITY_HEADERS

from .conftest import FAST_ARGON2, ROOT, database_env
from .intake_helpers import submit
from .review_helpers import Person, csrf_token, make_desk, photo_with_exif, session_cookie

STATEMENT = "Invented statement: a white minibus stopped at the Sortobe school at dawn."
CONTACT = "invented-contact-7731@example.org"
PUBLIC = {"auth.login", "static"}
LOGIN_FAILED = "Login failed. Check your name, password and code, and try again."


@pytest.fixture
def desk(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    yield desk
    desk.close()


def _url(rule) -> str:
    """The rule's path with every argument filled with 1."""
    return re.sub(r"<[^>]+>", "1", rule.rule)


def _rules(app, method: str, public: bool = False):
    return [
        r
        for r in app.url_map.iter_rules()
        if method in r.methods and (public or r.endpoint not in PUBLIC)
    ]


def _seed(desk):
    """An admin (id 1), a second reviewer (id 2) and one testimony with a photo and a
    contact (id 1), so that every route with an id of 1 has something to show."""
    alma = desk.add_reviewer("alma", admin=True)
    bolat = desk.add_reviewer("bolat")
    response = submit(
        desk.intake_app.test_client(),
        lang="en",
        statement=STATEMENT,
        contact=CONTACT,
        files=[("photo.jpg", photo_with_exif())],
    )
    assert response.status_code == 200
    return alma, bolat


def _secrets_of(desk) -> list[str]:
    return [STATEMENT, CONTACT, *desk.people, "Inbox", "TestCam", "43.208333"]


def _assert_shut(desk, client, what: str) -> None:
    """Every GET route redirects to the login page and every POST route answers 401,
    with nothing of the desk in the answer and nothing changed in the database."""
    before = desk.dump()
    gets, posts = _rules(desk.review_app, "GET"), _rules(desk.review_app, "POST")
    assert len(gets) >= 5 and len(posts) >= 9  # the walk is not vacuous
    for rule in gets:
        response = client.get(_url(rule))
        assert response.status_code == 302, (what, rule.rule, response.status_code)
        assert response.location.startswith("/login"), (what, rule.rule, response.location)
        body = response.get_data(as_text=True)
        assert not any(secret in body for secret in _secrets_of(desk)), (what, rule.rule)
    for rule in posts:
        response = client.post(
            _url(rule),
            data={"status": "withdrawn", "reviewer": "2", "note-text": "x", "reply-text": "x"},
        )
        assert response.status_code == 401, (what, rule.rule, response.status_code)
        body = response.get_data(as_text=True)
        assert not any(secret in body for secret in _secrets_of(desk)), (what, rule.rule)
    assert desk.dump() == before, what


def test_every_route_but_login_needs_a_whole_session(desk):
    alma, _bolat = _seed(desk)
    owner = desk.logged_in(alma)
    cookie = session_cookie(owner)
    assert owner.get("/testimony/1").status_code == 200  # the cookie itself works
    session_id, key = cookie.split(".")

    anonymous = desk.review_app.test_client()
    _assert_shut(desk, anonymous, "no cookie")

    flipped = bytearray(base64.urlsafe_b64decode(key + "="))
    flipped[0] ^= 1
    other_key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    for what, value in [
        ("session id without the key", session_id),
        ("session id and an empty key", session_id + "."),
        ("session id with another key", session_id + "." + other_key),
        (
            "session id with a key one bit off",
            session_id + "." + base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("="),
        ),
        ("the key without the session id", "." + key),
        ("garbage", "not-a-session"),
    ]:
        client = desk.review_app.test_client()
        client.set_cookie("review_session", value)
        _assert_shut(desk, client, what)
    assert owner.get("/").status_code == 200  # tampering did not end the real session


def test_the_intake_serves_nothing_of_the_review_side(desk):
    _seed(desk)
    intake = desk.intake_app.test_client()
    markers = ["review.css", "Log in and unlock", "Reviewers", STATEMENT, CONTACT]
    rules = list(desk.review_app.url_map.iter_rules())
    assert len(rules) >= 15
    for rule in rules:
        path = _url(rule).replace("/static/1", "/static/review.css")
        for method in ("GET", "POST"):
            response = intake.open(path, method=method, follow_redirects=True)
            if response.status_code == 200:  # only the intake's own welcome page
                assert re.fullmatch(r"/(ru|kk|en)/", response.request.path), (path, method)
            else:
                assert response.status_code in (404, 405), (path, method, response.status_code)
            body = response.get_data(as_text=True)
            assert not any(marker in body for marker in markers), (path, method)
    review_endpoints = {r.endpoint for r in rules} - {"static"}
    assert not review_endpoints & set(desk.intake_app.view_functions)


def test_the_intake_process_never_imports_the_review_side(desk):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTIMONY_")}
    env.update(
        FAST_ARGON2,
        TESTIMONY_INSTANCE_PATH=str(desk.settings.instance_path),
        **database_env(desk.settings.instance_path),
    )
    program = (
        "import sys, wsgi; wsgi.intake_app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'review'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- logging in ----------------------------------------------------------------------------


def test_login_opens_a_session_with_a_strict_cookie(desk):
    alma = desk.add_reviewer("alma", admin=True)
    client = desk.review_app.test_client()
    response = desk.login(client, alma)
    assert response.status_code == 302 and response.location == "/"
    cookie = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("review_session=")
    )
    attributes = [a.strip() for a in cookie.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes
    assert "Path=/" in attributes
    assert "Secure" not in attributes  # served over plain HTTP in this instance
    page = client.get("/")
    assert page.status_code == 200 and "alma" in page.get_data(as_text=True)


def test_the_session_cookie_is_secure_when_served_over_https(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch, TESTIMONY_COOKIE_SECURE="1")
    try:
        alma = desk.add_reviewer("alma")
        response = desk.login(desk.review_app.test_client(), alma)
        assert response.status_code == 302
        cookie = next(
            h for h in response.headers.getlist("Set-Cookie") if h.startswith("review_session=")
        )
        attributes = [a.strip() for a in cookie.split(";")]
        assert {"Secure", "HttpOnly", "SameSite=Strict"} <= set(attributes)
    finally:
        desk.close()


def _wrong_code(desk, secret: str) -> str:
    valid = {desk.clock.totp(secret, d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("123456", "654321", "111222") if c not in valid)


def _login_outcome(response) -> tuple[int, str]:
    body = response.get_data(as_text=True)
    body = re.sub(r'value="[^"]*"', 'value=""', body)  # the name typed comes back
    return response.status_code, body


def test_every_wrong_factor_fails_alike(desk):
    alma = desk.add_reviewer("alma")
    client = desk.review_app.test_client()
    outcomes = {
        "wrong password": desk.login(client, alma, password="Invented wrong passphrase"),
        "wrong code": desk.login(client, alma, code=_wrong_code(desk, alma.totp_secret)),
        "unknown name": client.post(
            "/login",
            data={
                "name": "nobody-here",
                "password": alma.password,
                "code": desk.clock.totp(alma.totp_secret),
            },
        ),
        "no code": client.post("/login", data={"name": "alma", "password": alma.password}),
    }
    results = {what: _login_outcome(r) for what, r in outcomes.items()}
    assert len(set(results.values())) == 1, {k: v[0] for k, v in results.items()}
    status, body = next(iter(results.values()))
    assert status == 401 and LOGIN_FAILED in body
    assert session_cookie(client) is None
    assert desk.login(client, alma).status_code == 302  # the account itself is fine


def test_every_failure_costs_the_same_work_as_a_login(desk, monkeypatch):
    """A failure that stopped early would answer faster: the time would tell an attacker
    that the password was right and only the code was wrong."""
    import argon2

    import crypto.scrypt

    alma = desk.add_reviewer("alma")
    work: list[str] = []
    verify, derive = argon2.PasswordHasher.verify, crypto.scrypt._derive
    monkeypatch.setattr(
        argon2.PasswordHasher, "verify", lambda *a, **k: work.append("argon2") or verify(*a, **k)
    )
    monkeypatch.setattr(
        crypto.scrypt, "_derive", lambda p, s, n: work.append("scrypt %d" % n) or derive(p, s, n)
    )
    client = desk.review_app.test_client()
    addresses = iter(range(1, 100))

    def attempt(person, **kwargs):  # each from its own address, below the client limit
        address = {"REMOTE_ADDR": "192.0.2.%d" % next(addresses)}
        return desk.login(client, person, environ_base=address, **kwargs)

    unknown = Person("nobody-here", alma.password, 0, alma.totp_secret, alma.identity)

    def cost(person=alma, **kwargs) -> list[str]:
        attempt(unknown)  # fills any cache a failure may keep
        work.clear()
        attempt(person, **kwargs)
        return sorted(work)

    expected = cost()
    assert expected == ["argon2", "scrypt 4"]
    client.post("/logout")
    assert cost(password="Invented wrong passphrase") == expected
    assert cost(code=_wrong_code(desk, alma.totp_secret)) == expected
    assert cost(unknown) == expected
    for _ in range(accounts.LOCK_AFTER):
        attempt(alma, password="Invented wrong passphrase")
    assert cost() == expected  # locked: the right password is refused, at the same cost
    assert session_cookie(client) is None


def test_a_used_code_is_never_accepted_again(desk):
    alma = desk.add_reviewer("alma")
    client = desk.review_app.test_client()
    desk.clock.advance(seconds=31)
    code = desk.clock.totp(alma.totp_secret)
    data = {"name": "alma", "password": alma.password, "code": code}
    assert client.post("/login", data=data).status_code == 302
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302
    desk.clock.advance(seconds=5)  # still inside the code's window
    replay = client.post("/login", data=data)
    assert replay.status_code == 401 and LOGIN_FAILED in replay.get_data(as_text=True)
    assert client.get("/").status_code == 302
    # Nor the code before it, which the window would otherwise still accept.
    earlier = desk.clock.totp(alma.totp_secret, -30)
    assert client.post("/login", data={**data, "code": earlier}).status_code == 401


def test_five_failures_lock_the_account_even_against_the_right_password(desk):
    alma = desk.add_reviewer("alma")
    client = desk.review_app.test_client()
    for _ in range(accounts.LOCK_AFTER):
        assert desk.login(client, alma, password="Invented wrong passphrase").status_code == 401
    locked = desk.login(client, alma)
    assert locked.status_code == 401 and LOGIN_FAILED in locked.get_data(as_text=True)
    assert session_cookie(client) is None
    with desk.db.sessions() as session:
        reviewer = session.scalar(select(Reviewer).where(Reviewer.name == "alma"))
        assert reviewer.locked_until is not None and reviewer.locked_until > desk.clock()
    desk.clock.advance(minutes=2)  # the first lock lasts a minute
    assert desk.login(client, alma).status_code == 302


def test_login_attempts_are_throttled_per_client(desk):
    alma = desk.add_reviewer("alma")
    client = desk.review_app.test_client()
    for n in range(10):
        response = client.post(
            "/login", data={"name": "nobody-%d" % n, "password": "x" * 12, "code": "123456"}
        )
        assert response.status_code == 401
    assert (
        client.post(
            "/login", data={"name": "nobody", "password": "x" * 12, "code": "123456"}
        ).status_code
        == 429
    )
    assert desk.login(client, alma).status_code == 429  # even the right answer waits
    assert session_cookie(client) is None
    elsewhere = desk.review_app.test_client()
    response = desk.login(elsewhere, alma, environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert response.status_code == 302


def test_login_never_keeps_a_cookie_from_before(desk):
    desk.review_app.config["WTF_CSRF_ENABLED"] = True
    alma = desk.add_reviewer("alma")
    client = desk.review_app.test_client()
    planted = ".".join(
        base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=") for _ in range(2)
    )
    client.set_cookie("review_session", planted)
    assert client.get("/").status_code == 302  # a planted value is not a session
    client.get("/login")
    csrf_before = client.get_cookie("review_csrf").value
    assert desk.login(client, alma).status_code == 302
    first = session_cookie(client)
    assert first and first != planted
    assert (
        client.get_cookie("review_csrf") is None
        or client.get_cookie("review_csrf").value != csrf_before
    )
    assert client.get("/").status_code == 200
    stranger = desk.review_app.test_client()
    stranger.set_cookie("review_session", planted)
    assert stranger.get("/").status_code == 302

    # Logging in again from the same browser ends the earlier session.
    assert desk.login(client, alma).status_code == 302
    second = session_cookie(client)
    assert second != first
    stale = desk.review_app.test_client()
    stale.set_cookie("review_session", first)
    assert stale.get("/").status_code == 302
    with desk.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ReviewSession)) == 1


def test_after_login_the_browser_goes_back_only_within_the_desk(desk):
    alma = desk.add_reviewer("alma")
    client = desk.review_app.test_client()
    asked = client.get("/testimony/1?lang=en")
    target = parse_qs(urlsplit(asked.location).query)["next"][0]
    assert desk.login(client, alma, query_string={"next": target}).location == target
    for hostile in (
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example/",
        "/\t/evil.example",
        "javascript:alert(1)",
        "///evil.example",
    ):
        location = desk.login(client, alma, query_string={"next": hostile}).location
        assert location.startswith("/") and location[1:2] not in ("/", "\\"), hostile
        assert not urlsplit(location).netloc and not urlsplit(location).scheme, hostile


# --- split knowledge -----------------------------------------------------------------------


def test_the_database_alone_unseals_nothing(desk):
    alma = desk.add_reviewer("alma")
    client = desk.logged_in(alma)
    secret_key = str(alma.identity)
    assert secret_key.startswith("AGE-SECRET-KEY-")
    session_id, key = session_cookie(client).split(".")
    with desk.db.sessions() as session:
        row = session.scalars(select(ReviewSession)).one()
        sealed = row.sealed_identity
        reviewer = session.get(Reviewer, alma.id)
        assert reviewer.identity_sealed.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert secret_key.encode() not in sealed
    with pytest.raises((crypto.AgeError, UnicodeDecodeError, ValueError)):
        crypto.parse_identity(sealed.decode("utf-8"))
    stored = desk.database_bytes()
    assert secret_key.encode() not in stored and secret_key.lower().encode() not in stored
    for part in (session_id, key):  # neither half of the cookie is kept
        assert part.encode() not in stored
        assert base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) not in stored


def test_the_cookie_alone_unseals_nothing(desk):
    alma = desk.add_reviewer("alma")
    client = desk.logged_in(alma)
    assert client.get("/").status_code == 200
    with desk.db.transaction() as session:
        session.execute(delete(ReviewSession))
    response = client.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert client.post("/testimony/1/note", data={"note-text": "x"}).status_code == 401


def _sessions(desk, person=None) -> int:
    query = select(func.count()).select_from(ReviewSession)
    if person is not None:
        query = query.where(ReviewSession.reviewer_id == person.id)
    with desk.db.sessions() as session:
        return session.scalar(query)


def test_logout_deletes_the_servers_copy(desk):
    alma = desk.add_reviewer("alma")
    client = desk.logged_in(alma)
    cookie = session_cookie(client)
    assert _sessions(desk) == 1
    response = client.post("/logout")
    assert response.status_code == 302 and response.location == "/login"
    assert _sessions(desk) == 0
    assert session_cookie(client) is None
    again = desk.review_app.test_client()
    again.set_cookie("review_session", cookie)
    assert again.get("/").status_code == 302


def test_idle_sessions_end_and_their_server_copy_is_deleted(desk):
    alma, bolat = desk.add_reviewer("alma"), desk.add_reviewer("bolat")
    client = desk.logged_in(alma)
    desk.clock.advance(minutes=desk.settings.review_idle_minutes - 1)
    assert client.get("/").status_code == 200  # activity keeps it alive
    desk.clock.advance(minutes=desk.settings.review_idle_minutes - 1)
    assert client.get("/").status_code == 200
    desk.clock.advance(minutes=desk.settings.review_idle_minutes, seconds=1)
    response = client.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert _sessions(desk) == 0

    # A session whose browser never comes back is deleted too, not left to wait for it.
    abandoned = desk.logged_in(alma)
    assert abandoned.get("/").status_code == 200
    desk.clock.advance(minutes=desk.settings.review_idle_minutes + 1)
    desk.logged_in(bolat)
    assert _sessions(desk, alma) == 0


def test_a_session_ends_after_its_lifetime_even_when_busy(desk):
    alma = desk.add_reviewer("alma")
    client = desk.logged_in(alma)
    steps = desk.settings.review_session_hours * 60 // 25 + 1
    for _ in range(steps):
        desk.clock.advance(minutes=25)
        if client.get("/").status_code != 200:
            break
    else:
        pytest.fail("the session outlived review_session_hours")
    assert _sessions(desk) == 0


def test_disabling_a_reviewer_or_changing_a_password_ends_their_sessions(desk):
    alma, bolat = desk.add_reviewer("alma", admin=True), desk.add_reviewer("bolat")
    cora = desk.add_reviewer("cora")
    admin = desk.logged_in(alma)
    bolat_browsers = [desk.logged_in(bolat), desk.logged_in(bolat)]
    assert _sessions(desk, bolat) == 2
    assert admin.post("/reviewers/%d/disable" % bolat.id).status_code == 302
    assert _sessions(desk, bolat) == 0
    for browser in bolat_browsers:
        assert browser.get("/").status_code == 302
    assert desk.login(desk.review_app.test_client(), bolat).status_code == 401

    cora_browser = desk.logged_in(cora)
    new_password = "Invented fresh passphrase 9 for C"
    with desk.db.transaction() as session:
        accounts.change_password(
            session,
            desk.settings,
            session.get(Reviewer, cora.id),
            cora.password,
            new_password,
            actor="operator",
        )
    assert _sessions(desk, cora) == 0
    assert cora_browser.get("/").status_code == 302
    assert desk.login(cora_browser, cora).status_code == 401  # the old password is gone
    assert desk.login(cora_browser, cora, password=new_password).status_code == 302
    assert admin.get("/").status_code == 200  # nobody else was logged out


# --- forms and headers ---------------------------------------------------------------------


def test_every_state_changing_route_refuses_a_post_without_a_csrf_token(desk):
    desk.review_app.config["WTF_CSRF_ENABLED"] = True
    alma, bolat = _seed(desk)
    client = desk.review_app.test_client()
    assert desk.login(client, alma).status_code == 302
    token = csrf_token(client.get("/testimony/1"))
    other = desk.review_app.test_client()
    assert desk.login(other, bolat).status_code == 302
    foreign_token = csrf_token(other.get("/testimony/1"))
    data = {
        "status": "withdrawn",
        "reviewer": str(bolat.id),
        "note-text": "Invented note",
        "reply-text": "Invented reply",
    }
    posts = _rules(desk.review_app, "POST", public=True)
    assert {r.endpoint for r in posts} >= {"auth.login", "auth.logout", "testimony.set_status"}
    for rule in posts:
        before = desk.dump()
        for extra in ({}, {"csrf_token": foreign_token}, {"csrf_token": "forged"}):
            response = client.post(_url(rule), data={**data, **extra})
            assert response.status_code == 400, (rule.rule, extra, response.status_code)
        assert desk.dump() == before, rule.rule
    assert client.get("/").status_code == 200  # still logged in: logout was refused too
    # With the token, the same request goes through.
    response = client.post("/testimony/1/status", data={**data, "csrf_token": token})
    assert response.status_code == 302
    with desk.db.sessions() as session:
        assert session.get(Testimony, 1).status == "withdrawn"


def _assert_headers(response, where: str) -> None:
    headers = response.headers
    assert "no-store" in headers.get("Cache-Control", ""), where
    assert headers.get("Referrer-Policy") == "no-referrer", where
    csp = headers.get("Content-Security-Policy", "")
    assert csp == SECURITY_HEADERS["Content-Security-Policy"], where
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, where


def test_every_response_forbids_caching_and_referrers_and_has_the_csp(desk):
    alma, _bolat = _seed(desk)
    anonymous = desk.review_app.test_client()
    _assert_headers(anonymous.get("/static/review.css"), "static")
    _assert_headers(anonymous.get("/no-such-page"), "404")
    _assert_headers(anonymous.get("/login"), "login page")
    _assert_headers(anonymous.post("/login", data={"name": "x"}), "failed login")
    _assert_headers(desk.login(desk.review_app.test_client(), alma), "login redirect")
    client = desk.logged_in(alma)
    rules = sorted(
        desk.review_app.url_map.iter_rules(), key=lambda r: r.endpoint == "auth.logout"
    )  # log out last
    for rule in rules:
        path = _url(rule).replace("/static/1", "/static/review.css")
        for method in sorted(rule.methods & {"GET", "POST"}):
            _assert_headers(anonymous.open(path, method=method), "anonymous %s %s" % (method, path))
            response = client.open(path, method=method)
            assert response.status_code < 500, (method, path)
            _assert_headers(response, "logged in %s %s" % (method, path))


def test_file_parts_sent_to_the_review_face_never_reach_disk(tmp_path, monkeypatch):
    """Werkzeug spools big file parts to a temporary file; the review face discards them."""
    import io
    import tempfile

    from review import create_app
    from store.instance import init

    from .conftest import make_settings

    settings = make_settings(tmp_path / "instance")
    init(settings, out=lambda *_: None)
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))
    created: list[str] = []
    real = tempfile.TemporaryFile

    def watching(*args, **kwargs):
        created.append("file")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", watching)
    monkeypatch.setattr(
        tempfile, "SpooledTemporaryFile", lambda *a, **k: created.append("spooled") or real()
    )
    app = create_app(settings)
    payload = b"INVENTED-CANARY-" * 70_000  # about 1 MiB, over Werkzeug's 500 KiB
    response = app.test_client().post(
        "/login",
        data={"name": "x", "file": (io.BytesIO(payload), "a.bin")},
        content_type="multipart/form-data",
    )
    assert response.status_code in (400, 401)
    assert created == []
    assert list(spool_dir.iterdir()) == []
