"""Reviewers' sessions kept in Redis (TESTIMONY_SESSION_STORAGE_URI=redis://…), and rate
limits shared through Redis by several app instances, on a real Redis server.

Each test uses a key prefix of its own, so runs sharing one Redis never meet."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
import redis as redis_module
from sqlalchemy import func, select

import crypto
from review import accounts
from store.models import ReviewSession

from .intake_helpers import receipt_code, submit
from .review_helpers import make_desk, session_cookie
from .servers import redis_binary, redis_server


@pytest.fixture
def prefix() -> str:
    return "test-%s" % uuid.uuid4().hex[:12]


@pytest.fixture
def store(redis_url, prefix):
    client = redis_module.Redis.from_url(redis_url)
    yield client
    for pattern in (prefix + "*", "LIMITS:LIMITER/" + prefix + "*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.close()


@pytest.fixture
def desk(tmp_path, monkeypatch, redis_url, prefix, store):
    desk = make_desk(
        tmp_path,
        monkeypatch,
        TESTIMONY_SESSION_STORAGE_URI=redis_url,
        TESTIMONY_LIMITER_PREFIX=prefix,
    )
    yield desk
    desk.close()


def _decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _key(prefix: str, cookie: str) -> str:
    session_id = _decode(cookie.split(".")[0])
    return "%s-review-session:%s" % (prefix, hashlib.sha256(session_id).hexdigest())


def _session_keys(store, prefix: str) -> list[str]:
    return sorted(k.decode() for k in store.scan_iter(prefix + "-review-session:*"))


def _rows(desk) -> int:
    with desk.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(ReviewSession))


def test_a_login_keeps_its_sealed_copy_in_redis_under_the_hash_of_the_session_id(
    desk, store, prefix
):
    alma = desk.add_reviewer("Aisha Primerova")
    client = desk.logged_in(alma)
    cookie = session_cookie(client)
    assert client.get("/").status_code == 200
    assert _rows(desk) == 0  # nothing in the database
    assert _session_keys(store, prefix) == [_key(prefix, cookie)]
    session_id, session_key = cookie.split(".")
    for key in store.scan_iter(prefix + "*"):  # no key name holds the id itself
        assert session_id not in key.decode() and _decode(session_id).hex() not in key.decode()
    index = store.smembers("%s-review-sessions-of:%d" % (prefix, alma.id))
    assert [m.decode() for m in index] == [_key(prefix, cookie).rsplit(":", 1)[1]]
    ttl = store.pttl(_key(prefix, cookie))
    idle_ms = desk.settings.review_idle_minutes * 60_000
    assert idle_ms - 10_000 < ttl <= idle_ms


def test_a_redis_dump_holds_nothing_usable_without_the_cookie(desk, store, prefix):
    alma = desk.add_reviewer("Aisha Primerova")
    client = desk.logged_in(alma)
    cookie = session_cookie(client)
    secret = str(alma.identity).encode()
    dump = b"".join(store.dump(key) or b"" for key in store.scan_iter(prefix + "*"))
    values = b"".join(
        v
        for key in store.scan_iter(prefix + "-review-session:*")
        for v in store.hgetall(key).values()
    )
    assert dump and values
    for part in cookie.split("."):  # neither half of the cookie is in Redis
        assert _decode(part) not in dump + values and part.encode() not in dump + values
    assert secret not in dump + values and secret.lower() not in dump + values

    sealed = store.hget(_key(prefix, cookie), "sealed")
    id_hash = _key(prefix, cookie).rsplit(":", 1)[1]
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    with pytest.raises(InvalidTag):  # any key but the cookie's opens nothing
        ChaCha20Poly1305(b"\0" * 32).decrypt(sealed[:12], sealed[12:], id_hash.encode())
    opened = ChaCha20Poly1305(_decode(cookie.split(".")[1])).decrypt(
        sealed[:12], sealed[12:], id_hash.encode()
    )  # the cookie's key does (control)
    assert crypto.parse_identity(opened.decode()).recipient == alma.identity.recipient

    # The cookie without the server's copy unlocks nothing either.
    for key in store.scan_iter(prefix + "-review-session:*"):
        store.delete(key)
    response = client.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_use_refreshes_the_ttl_up_to_the_idle_timeout_and_never_past_the_session_end(
    tmp_path, monkeypatch, redis_url, prefix, store
):
    desk = make_desk(
        tmp_path,
        monkeypatch,
        TESTIMONY_SESSION_STORAGE_URI=redis_url,
        TESTIMONY_LIMITER_PREFIX=prefix,
        TESTIMONY_REVIEW_IDLE_MINUTES="30",
        TESTIMONY_REVIEW_SESSION_HOURS="1",
    )
    try:
        alma = desk.add_reviewer("Aisha Primerova")
        client = desk.logged_in(alma)
        key = _key(prefix, session_cookie(client))
        store.pexpire(key, 60_000)  # as if the reviewer had been away for 29 minutes
        desk.clock.advance(minutes=20)
        assert client.get("/").status_code == 200
        assert store.pttl(key) > 29 * 60_000  # refreshed to the idle timeout
        desk.clock.advance(minutes=25)  # 45 minutes into a one-hour session
        assert client.get("/").status_code == 200
        assert 14 * 60_000 < store.pttl(key) <= 15 * 60_000  # capped at the session's end
        desk.clock.advance(minutes=16)
        response = client.get("/")
        assert response.status_code == 302 and response.location.startswith("/login")
        assert store.exists(key) == 0
    finally:
        desk.close()


def test_idle_sessions_end(desk, store, prefix):
    alma = desk.add_reviewer("Aisha Primerova")
    client = desk.logged_in(alma)
    key = _key(prefix, session_cookie(client))
    desk.clock.advance(minutes=desk.settings.review_idle_minutes + 1)
    assert client.get("/").status_code == 302
    assert store.exists(key) == 0


def test_logout_deletes_the_copy_and_its_index_entry(desk, store, prefix):
    alma = desk.add_reviewer("Aisha Primerova")
    client = desk.logged_in(alma)
    cookie = session_cookie(client)
    assert client.post("/logout").status_code == 302
    assert _session_keys(store, prefix) == []
    assert store.smembers("%s-review-sessions-of:%d" % (prefix, alma.id)) == set()
    again = desk.review_app.test_client()
    again.set_cookie("review_session", cookie)
    assert again.get("/").status_code == 302


def test_disabling_a_reviewer_deletes_every_session_of_theirs(desk, store, prefix):
    admin = desk.add_reviewer("Aisha Primerova", admin=True)
    other = desk.add_reviewer("Ivan Testov")
    admin_browser = desk.logged_in(admin)
    phone, laptop = desk.logged_in(other), desk.logged_in(other)
    assert len(_session_keys(store, prefix)) == 3
    assert admin_browser.post("/reviewers/%d/disable" % other.id).status_code == 302
    assert _session_keys(store, prefix) == [_key(prefix, session_cookie(admin_browser))]
    assert not store.exists("%s-review-sessions-of:%d" % (prefix, other.id))
    for browser in (phone, laptop):
        assert browser.get("/").status_code == 302
    assert admin_browser.get("/").status_code == 200


def test_changing_the_password_ends_every_session(desk, store, prefix):
    person = desk.add_reviewer("Ma Dzhun-test")
    first, second = desk.logged_in(person), desk.logged_in(person)
    assert len(_session_keys(store, prefix)) == 2
    with desk.db.transaction() as session:
        from store.models import Reviewer

        accounts.change_password(
            session,
            desk.settings,
            session.get(Reviewer, person.id),
            person.password,
            "A new invented passphrase 7",
            "operator",
        )
    assert _session_keys(store, prefix) == []
    assert first.get("/").status_code == 302 and second.get("/").status_code == 302


@pytest.mark.skipif(redis_binary() is None, reason="redis-server is not installed")
def test_the_review_face_answers_503_while_redis_is_down(tmp_path, monkeypatch):
    with redis_server(tmp_path / "redis") as server:
        desk = make_desk(tmp_path, monkeypatch, TESTIMONY_SESSION_STORAGE_URI=server.url)
        desk.review_app.config["TESTING"] = False
        try:
            alma = desk.add_reviewer("Aisha Primerova")
            client = desk.logged_in(alma)
            server.stop()
            assert client.get("/").status_code == 503
            server.start()  # a restart forgets every session: log in again
            assert client.get("/").status_code == 302
            assert desk.login(client, alma).status_code == 302
            assert client.get("/").status_code == 200
        finally:
            desk.close()


# --- rate limits shared by workers --------------------------------------------------------


def _budget_apps(instance, storage: str, prefix: str):
    from intake import create_app

    settings, _identity = instance
    settings = settings.with_changes(
        limiter_storage_uri=storage, limiter_prefix=prefix, submissions_per_hour=3
    )
    apps = [create_app(settings), create_app(settings)]
    for app in apps:
        app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return apps


def _accepted(app) -> bool:
    response = submit(app.test_client())
    assert response.status_code in (200, 429), response.status_code
    return response.status_code == 200 and receipt_code(response) is not None


def test_two_workers_share_the_global_budget_through_redis(instance, redis_url, prefix, store):
    first, second = _budget_apps(instance, redis_url, prefix)
    try:
        assert [_accepted(first), _accepted(second), _accepted(first)] == [True] * 3
        assert not _accepted(second) and not _accepted(first)  # 3 an hour, over both
    finally:
        for app in (first, second):
            app.extensions["testimony_db"].dispose()


def test_without_shared_storage_each_worker_would_count_alone(instance):
    """The control: with per-process memory storage the same sequence is accepted, which
    is why several workers need Redis."""
    first, second = _budget_apps(instance, "memory://", "control")
    try:
        assert [_accepted(first), _accepted(second), _accepted(first), _accepted(second)] == [
            True
        ] * 4
    finally:
        for app in (first, second):
            app.extensions["testimony_db"].dispose()
