"""The Redis ACL of docs/deploy/redis-acl.conf, on a redis-server of the test's own: each
face works with its own user (the intake's rate limits; the review face's login throttle
and sealed session copies), and the intake's user can neither read nor delete a
reviewer's session copy."""

from __future__ import annotations

import subprocess

import pytest
import redis as redis_module

from .conftest import ROOT
from .intake_helpers import receipt_code, submit
from .review_helpers import make_desk, session_cookie
from .servers import free_port, redis_binary, wait_for_port

ACL = ROOT / "docs" / "deploy" / "redis-acl.conf"
PASSWORDS = {
    "testimony-intake": "invented-intake-secret",
    "testimony-review": "invented-review-secret",
}


@pytest.fixture
def acl_redis(tmp_path):
    if redis_binary() is None:
        pytest.skip("redis-server is not installed")
    lines = []
    for line in ACL.read_text().splitlines():
        if line.startswith("user testimony-"):
            name = line.split()[1]
            line = line.replace(">CHANGE-ME", ">" + PASSWORDS[name])
        if line.startswith("user "):
            lines.append(line)
    lines.append("user inspector on >invented-inspector ~* &* +@all")  # the test's own eyes
    users = tmp_path / "users.acl"
    users.write_text("\n".join(lines) + "\n")
    port = free_port()
    process = subprocess.Popen(
        [
            redis_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--aclfile",
            str(users),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.kill()
        process.wait()


def _url(port: int, user: str) -> str:
    return "redis://%s:%s@127.0.0.1:%d/0" % (user, PASSWORDS[user], port)


def test_each_face_works_with_its_own_redis_user_and_no_further(acl_redis, tmp_path, monkeypatch):
    intake_url, review_url = (
        _url(acl_redis, "testimony-intake"),
        _url(acl_redis, "testimony-review"),
    )
    desk = make_desk(
        tmp_path,
        monkeypatch,
        TESTIMONY_LIMITER_PREFIX="testimony",
        TESTIMONY_SESSION_STORAGE_URI=review_url,
        TESTIMONY_LIMITER_STORAGE_URI=review_url,
    )
    try:
        from intake import create_app

        intake = create_app(desk.settings.with_changes(limiter_storage_uri=intake_url))
        intake.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
        try:
            response = submit(intake.test_client())
            assert response.status_code == 200 and receipt_code(response)
        finally:
            intake.extensions["testimony_db"].dispose()

        person = desk.add_reviewer("Aisha Primerova")
        client = desk.logged_in(person)
        assert client.get("/").status_code == 200
        assert session_cookie(client)

        as_intake = redis_module.Redis.from_url(intake_url)
        as_review = redis_module.Redis.from_url(review_url)
        inspector = redis_module.Redis.from_url(
            "redis://inspector:invented-inspector@127.0.0.1:%d/0" % acl_redis
        )
        keys = sorted(k.decode() for k in inspector.scan_iter("*"))
        sessions = [k for k in keys if k.startswith("testimony-review-session:")]
        assert len(sessions) == 1
        assert any(k.startswith("LIMITS:LIMITER/testimony-intake/") for k in keys)
        assert any(k.startswith("LIMITS:LIMITER/testimony-review/") for k in keys)
        for command in (
            lambda: as_intake.hgetall(sessions[0]),
            lambda: as_intake.delete(sessions[0]),
            lambda: as_intake.smembers("testimony-review-sessions-of:%d" % person.id),
            lambda: as_intake.keys("*"),
            lambda: as_intake.scan(0),
            lambda: as_review.incr("LIMITS:LIMITER/testimony-intake/x"),
        ):
            with pytest.raises(redis_module.exceptions.NoPermissionError):
                command()
        assert as_review.exists(sessions[0]) == 1
        assert client.get("/").status_code == 200
        for connection in (as_intake, as_review, inspector):
            connection.close()
    finally:
        desk.close()
