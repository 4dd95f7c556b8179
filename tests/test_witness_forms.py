"""A busy hour, or a backend briefly out of reach, never loses what a witness typed.

When the hour's budget of submissions (over all witnesses) or of additions (per receipt)
is spent, or the database or Redis cannot be reached, the form comes back with the text
still in it and a one-line explanation: nothing typed is kept in the browser's history
(the forms say ``autocomplete="off"``), so Back would show an empty form. Nothing of it
is stored.
"""

from __future__ import annotations

import re
import socket

from sqlalchemy import func, select

from intake import create_app
from store.models import Statement, Testimony

from .intake_helpers import receipt_code, submit

TYPED = "Вымышленный длинный рассказ Ивана Тестова, который нельзя потерять."


def _app(settings, **changes):
    app = create_app(settings.with_changes(**changes))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return app


def _count(app, model) -> int:
    with app.extensions["testimony_db"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def test_a_busy_hour_gives_the_form_back_with_its_text(instance) -> None:
    settings, _ = instance
    app = _app(settings, submissions_per_hour=0)
    try:
        response = submit(
            app.test_client(),
            lang="ru",
            statement=TYPED,
            contact="Вымышленный контакт 42",
            when_approx="ночью",
            files=[("фото.jpg", b"\xff\xd8\xff" + bytes(64))],
        )
        html = response.data.decode()
        assert response.status_code == 429
        assert TYPED in html and "Вымышленный контакт 42" in html and "ночью" in html
        assert re.search(r'<input checked[^>]*value="saw"', html)
        assert "подождите час" in html  # the one-line explanation, in Russian
        assert "прикрепите их ещё раз" in html  # files must be chosen again
        assert receipt_code(response) is None
        assert _count(app, Testimony) == 0
    finally:
        app.extensions["testimony_db"].dispose()


def test_a_busy_hour_gives_an_addition_back_with_its_text(instance) -> None:
    settings, _ = instance
    open_app = _app(settings)
    busy_app = _app(settings, follow_ups_per_hour=0)
    try:
        code = receipt_code(submit(open_app.test_client(), lang="en"))
        statements = _count(open_app, Statement)
        response = busy_app.test_client().post(
            "/en/receipt/add",
            data={"receipt": code, "statement": TYPED},
            content_type="multipart/form-data",
        )
        html = response.data.decode()
        assert response.status_code == 429
        assert TYPED in html and code in html
        assert "wait an hour" in html
        assert _count(open_app, Statement) == statements
        # A look-up over its budget gets the short page: nothing typed to keep.
        lookups = busy_app.test_client()
        for _ in range(20):
            lookups.post("/en/receipt/", data={"receipt": "0000"})
        refused = lookups.post("/en/receipt/", data={"receipt": code})
        assert refused.status_code == 429 and "Too many at once" in refused.data.decode()
    finally:
        open_app.extensions["testimony_db"].dispose()
        busy_app.extensions["testimony_db"].dispose()


def test_a_database_out_of_reach_gives_the_forms_back_with_their_text(instance) -> None:
    settings, _ = instance
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:%d/testimony" % port
    app = create_app(settings.with_changes(database_url=nowhere))
    app.config.update(WTF_CSRF_ENABLED=False)  # TESTING off, as deployed
    try:
        client = app.test_client()
        sent = submit(client, lang="kk", statement=TYPED, contact="Вымышленный контакт 7")
        html = sent.data.decode()
        assert sent.status_code == 503
        assert TYPED in html and "Вымышленный контакт 7" in html
        assert "Бірнеше минуттан кейін қайта көріңіз" in html and "Мәтініңіз осында қалды" in html
        assert receipt_code(sent) is None

        added = client.post(
            "/en/receipt/add",
            data={"receipt": "1234 5678 9012 3456 7890", "statement": TYPED},
            content_type="multipart/form-data",
        )
        assert added.status_code == 503
        assert TYPED in added.data.decode() and "Your text is still here" in added.data.decode()

        page = client.get("/en/testimony/")  # nothing typed yet: the short page
        assert page.status_code == 503 and "Please try again in a few minutes" in page.data.decode()
        assert "Back button" not in page.data.decode()
    finally:
        app.extensions["testimony_db"].dispose()
