"""Sessions, cookies and receipts against someone guessing or replaying.

test_review_auth.py covers the reviewer's login factors, TOTP replay, throttling,
fixation and split-knowledge sessions. Added here: the flags of every cookie either face
sets; the witness's receipt lookup, which must not tell a right code from a wrong or
malformed one by its message or by the work it does before answering (the same Argon2id
derivation and the same query run in every case, counted, not timed); receipt guessing
throttled per client; and an old reviewer cookie replayed after logout or timeout against
a state-changing route. Everything here is invented.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from store import receipts

from .adversarial_helpers import seeded_desk, table_counts
from .intake_helpers import receipt_code, submit
from .review_helpers import session_cookie


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    seeded = seeded_desk(tmp_path, monkeypatch)
    yield seeded
    seeded.desk.close()


def _cookies(response) -> dict[str, list[str]]:
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        name = header.split("=", 1)[0]
        found[name] = [part.strip() for part in header.split(";")[1:]]
    return found


def _every_cookie(seeded) -> dict[str, list[str]]:
    desk = seeded.desk
    desk.review_app.config["WTF_CSRF_ENABLED"] = True
    desk.intake_app.config["WTF_CSRF_ENABLED"] = True
    found = {}
    intake = desk.intake_app.test_client()
    for path in ("/ru/testimony/", "/en/receipt/"):
        found.update({"intake " + k: v for k, v in _cookies(intake.get(path)).items()})
    review = desk.review_app.test_client()
    found.update({"review " + k: v for k, v in _cookies(review.get("/login?lang=ru")).items()})
    found.update({"review " + k: v for k, v in _cookies(desk.login(review, seeded.admin)).items()})
    return found


def test_every_cookie_is_http_only_and_same_site_strict(seeded):
    found = _every_cookie(seeded)
    assert {"intake s", "review review_csrf", "review review_lang", "review review_session"} <= set(
        found
    ), sorted(found)
    for name, attributes in found.items():
        assert "HttpOnly" in attributes and "SameSite=Strict" in attributes, name
        assert not any(a.lower().startswith("domain=") for a in attributes), name
        if "Max-Age=0" not in attributes:  # not a deletion: kept for the browser session only
            assert not any(a.lower().startswith(("expires=", "max-age=")) for a in attributes), (
                name,
                attributes,
            )


def test_every_cookie_is_secure_when_served_over_https(tmp_path, monkeypatch):
    seeded = seeded_desk(tmp_path, monkeypatch, TESTIMONY_COOKIE_SECURE="1")
    try:
        found = _every_cookie(seeded)
        assert len(found) >= 4
        for name, attributes in found.items():
            assert "Secure" in attributes, name
    finally:
        seeded.desk.close()


class Work:
    """Counts what a request does: each Argon2id derivation (with its cost) and each
    SQL statement, in order."""

    def __init__(self, monkeypatch, engine) -> None:
        self.kdf: list[tuple[int, int, int]] = []
        self.sql: list[str] = []
        real = receipts.hash_secret_raw

        def counted(**kwargs):
            self.kdf.append((len(kwargs["secret"]), kwargs["memory_cost"], kwargs["time_cost"]))
            return real(**kwargs)

        monkeypatch.setattr(receipts, "hash_secret_raw", counted)
        event.listen(engine, "before_cursor_execute", self._statement)
        self.engine = engine

    def _statement(self, _conn, _cursor, statement, *_args) -> None:
        self.sql.append(re.sub(r"\s+", " ", statement))

    def measure(self, send) -> tuple[list, list, object]:
        self.kdf, self.sql = [], []
        response = send()
        return list(self.kdf), list(self.sql), response

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)


def _answer(response) -> tuple[int, str]:
    body = response.get_data(as_text=True)
    return response.status_code, re.sub(r'value="[^"]*"', 'value=""', body)


def test_a_receipt_lookup_does_the_same_work_for_a_right_a_wrong_and_a_malformed_code(
    seeded, monkeypatch
):
    desk = seeded.desk
    client = desk.intake_app.test_client()
    client.post("/en/receipt/", data={"receipt": seeded.receipt})  # warm the KDF cache
    work = Work(monkeypatch, desk.db.engine)
    try:
        codes = {
            "right": seeded.receipt,
            "wrong": receipts.new_code(),
            "malformed": "invented code 12",
            "wrong length": "1234 5678 9012",
            "letters": "abcd efgh ijkl mnop qrst",
            "other digits": "١٢٣٤" * 5,
        }
        seen = {}
        for what, code in codes.items():
            for path in ("/en/receipt/", "/en/receipt/add"):
                seen[what, path] = work.measure(
                    lambda c=code, p=path: client.post(
                        p,
                        data={"receipt": c, "statement": "Invented addition."},
                        environ_base={"REMOTE_ADDR": "192.0.2.%d" % (len(seen) + 1)},
                    )
                )
    finally:
        work.close()
    for path in ("/en/receipt/", "/en/receipt/add"):
        right_kdf, right_sql, right = seen["right", path]
        assert right.status_code == 200, path
        assert len(right_kdf) == 1, path
        failures = {what: seen[what, path] for what in codes if what != "right"}
        for what, (kdf, sql, response) in failures.items():
            # One derivation at the instance's cost, like the right code, and the same
            # lookup query as the right code's first one.
            assert kdf == right_kdf, (path, what, kdf)
            assert sql[:1] == right_sql[:1] and sql == failures["wrong"][1], (path, what)
        answers = {what: _answer(response) for what, (_k, _s, response) in failures.items()}
        assert len(set(answers.values())) == 1, (path, {k: v[0] for k, v in answers.items()})
        assert next(iter(answers.values()))[0] == 404


def test_guessing_receipts_is_throttled_per_client(seeded):
    desk = seeded.desk
    client = desk.intake_app.test_client()
    guesser = {"REMOTE_ADDR": "192.0.2.66"}
    for _ in range(20):
        guess = client.post(
            "/en/receipt/", data={"receipt": receipts.new_code()}, environ_base=guesser
        )
        assert guess.status_code == 404
    before = table_counts(desk.db)
    refused = client.post("/en/receipt/", data={"receipt": seeded.receipt}, environ_base=guesser)
    assert refused.status_code == 429  # even the right code waits
    assert "Invented question" not in refused.get_data(as_text=True)
    assert table_counts(desk.db) == before
    elsewhere = client.post(
        "/en/receipt/", data={"receipt": seeded.receipt}, environ_base={"REMOTE_ADDR": "192.0.2.67"}
    )
    assert elsewhere.status_code == 200


def test_an_old_cookie_replayed_after_logout_or_timeout_changes_nothing(seeded):
    desk = seeded.desk
    for how in ("logout", "timeout"):
        browser = desk.logged_in(seeded.admin)
        cookie = session_cookie(browser)
        if how == "logout":
            assert browser.post("/logout").status_code == 302
        else:
            desk.clock.advance(minutes=desk.settings.review_idle_minutes, seconds=1)
            assert browser.get("/").status_code == 302
        thief = desk.review_app.test_client()
        thief.set_cookie("review_session", cookie)
        before = desk.dump()
        for path, data in (
            ("/testimony/1/note", {"note-text": "Invented forged note"}),
            ("/testimony/1/reply", {"reply-text": "Invented forged reply"}),
            ("/testimony/1/contact", {}),
            ("/testimony/file/1/original", {}),
            ("/reviewers/%d/disable" % seeded.reviewer.id, {}),
        ):
            response = thief.post(path, data=data)
            assert response.status_code == 401, (how, path)
            assert "invented-contact" not in response.get_data(as_text=True)
        assert thief.get("/testimony/1").status_code == 302, how
        assert desk.dump() == before, how
        # The witness side was never affected, and a new login works.
    assert receipt_code(submit(desk.intake_app.test_client()))
    assert desk.logged_in(seeded.admin).get("/").status_code == 200
