"""When the database or Redis cannot be reached, a witness sees a clear "try again" page in
their language with status 503, never a 500 and never a receipt; nothing is stored, and
the service recovers by itself when the backend is back. The reviewer face answers 503
the same way. Redis here is a server of the test's own, stopped and started again."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from store.models import Testimony

from .intake_helpers import form, receipt_code, submit
from .servers import free_port, redis_binary, redis_server

TRY_AGAIN = {
    "ru": "Попробуйте ещё раз через несколько минут",
    "kk": "Бірнеше минуттан кейін қайта көріңіз",
    "en": "Please try again in a few minutes",
}


def _intake(settings):
    from intake import create_app

    app = create_app(settings)
    app.config.update(WTF_CSRF_ENABLED=False)  # as deployed otherwise: TESTING stays off
    return app


def _testimonies(settings) -> int:
    from store.db import Database

    db = Database(settings)
    try:
        with db.sessions() as session:
            return session.scalar(select(func.count()).select_from(Testimony))
    finally:
        db.dispose()


@pytest.mark.parametrize("lang", ["ru", "kk", "en"])
def test_an_unreachable_database_gives_the_witness_a_translated_try_again_page(instance, lang):
    settings, _identity = instance
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:%d/testimony" % free_port()
    app = _intake(settings.with_changes(database_url=nowhere))
    client = app.test_client()
    try:
        page = client.get("/%s/testimony/" % lang)
        assert page.status_code == 503
        assert TRY_AGAIN[lang] in page.get_data(as_text=True)
        sent = submit(client, lang=lang)
        assert sent.status_code == 503
        text = sent.get_data(as_text=True)
        assert TRY_AGAIN[lang] in text
        assert receipt_code(sent) is None
        lookup = client.post("/%s/receipt/" % lang, data={"receipt": "1234 5678 9012 3456 7890"})
        assert lookup.status_code == 503
    finally:
        app.extensions["testimony_db"].dispose()


@pytest.mark.skipif(redis_binary() is None, reason="redis-server is not installed")
def test_when_redis_goes_away_the_witness_is_asked_to_try_again_and_nothing_is_stored(
    instance, tmp_path
):
    settings, _identity = instance
    with redis_server(tmp_path / "redis") as redis:
        app = _intake(
            settings.with_changes(limiter_storage_uri=redis.url, limiter_prefix="unavailable-test")
        )
        client = app.test_client()
        try:
            first = submit(client)
            assert first.status_code == 200 and receipt_code(first)
            assert _testimonies(settings) == 1

            redis.stop()
            refused = submit(client, statement="Invented statement sent while Redis is down.")
            assert refused.status_code == 503
            assert TRY_AGAIN["ru"] in refused.get_data(as_text=True)
            assert receipt_code(refused) is None
            assert _testimonies(settings) == 1

            redis.start()
            again = submit(client, statement="Invented statement sent once Redis is back.")
            assert again.status_code == 200 and receipt_code(again)
            assert _testimonies(settings) == 2
        finally:
            app.extensions["testimony_db"].dispose()


def test_the_review_face_answers_503_when_the_database_is_unreachable(instance):
    from review import create_app

    settings, _identity = instance
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:%d/testimony" % free_port()
    app = create_app(settings.with_changes(database_url=nowhere))
    app.config.update(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    try:
        response = client.post(
            "/login", data={"name": "Ivan Testov", "password": "x" * 14, "code": "123456"}
        )
        assert response.status_code == 503
        assert "cannot be reached just now" in response.get_data(as_text=True)
        russian = client.post(
            "/login?lang=ru", data={"name": "Ivan Testov", "password": "x" * 14, "code": "123456"}
        )
        assert russian.status_code == 503
        assert "сейчас недоступны" in russian.get_data(as_text=True)
    finally:
        app.extensions["testimony_db"].dispose()


def test_a_valid_form_is_what_was_refused(client):
    """The form used above is accepted when the backends are up (so 503 above is about
    the backend, not the form)."""
    response = client.post("/ru/testimony/", data=form(), content_type="multipart/form-data")
    assert response.status_code == 200 and receipt_code(response)
