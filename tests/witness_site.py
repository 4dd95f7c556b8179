"""The witness's site as the browser tests of the witness experience see it.

``start_site`` makes a fresh instance, sends one testimony and a reviewer's reply to it
(through the apps in this process), then serves the intake with gunicorn twice on that
instance: the normal site, and a "busy" one whose hourly budgets are spent, for the
pages a witness sees when too many people are sending. ``open_browser`` starts Debian's
chromium; ``visit_every_page`` walks a browser page through every kind of intake page in
one language, yielding after each so a test can look at it.

Everything typed here is invented.
"""

from __future__ import annotations

import http.client
import io
import os
import wave
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import FAST_ARGON2, ROOT
from .intake_helpers import receipt_code, submit
from .review_helpers import make_desk
from .test_browser_intake import STEP_TIMEOUT_MS, gunicorn, open_browser  # noqa: F401

LANGUAGES = ("ru", "kk", "en")
AXE = ROOT / "tests" / ".node" / "node_modules" / "axe-core" / "axe.min.js"
STATEMENT = {
    "ru": "Вымышленный рассказ для проверки: ночью у моста Ивана Тестова остановили "
    "полицейские и забрали телефон.",
    "kk": "Тексеруге арналған ойдан шығарылған әңгіме: түнде көпір жанында Айша Примерованы "
    "полиция тоқтатты.",
    "en": "An invented account for a test: at night the police stopped Ivan Testov near "
    "the bridge and took his phone.",
}
REPLY = "Вымышленный ответ: спасибо, Syvanov-test. Где стояла машина?"
LOOKUPS_PER_HOUR = 20  # intake.views.lookup's per-client limit


@dataclass
class Site:
    url: str
    busy_url: str
    code: str  # the receipt of a testimony that has a reply
    instance: Path
    env: dict[str, str] = field(repr=False)


def instance_env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTIMONY_")}
    env.update(
        FAST_ARGON2,
        TESTIMONY_INSTANCE_PATH=str(instance),
        TESTIMONY_SCRYPT_WORK_FACTOR="4",
        **extra,
    )
    return env


def _testimony_with_reply(folder: Path, **settings_env: str) -> tuple[str, str]:
    """A fresh instance at ``folder/instance`` holding one testimony with one reply;
    returns its receipt code and the instance's database URL."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        desk = make_desk(folder, monkeypatch, **settings_env)
        try:
            reviewer = desk.add_reviewer("Ma Dzhun-test")
            code = receipt_code(submit(desk.intake_app.test_client(), lang="ru"))
            assert code
            review = desk.logged_in(reviewer)
            sent = review.post("/testimony/1/reply", data={"reply-text": REPLY})
            assert sent.status_code == 302, sent.data
        finally:
            desk.close()
    return code, desk.settings.database_url


@contextmanager
def start_site(folder: Path, **settings_env: str) -> Iterator[Site]:
    code, database_url = _testimony_with_reply(folder, **settings_env)
    instance = folder / "instance"
    env = instance_env(instance, TESTIMONY_DATABASE_URL=database_url, **settings_env)
    busy_env = {**env, "TESTIMONY_SUBMISSIONS_PER_HOUR": "0"}
    with ExitStack() as stack:
        # One worker each: the in-memory rate limits are then the whole server's.
        url = stack.enter_context(
            gunicorn("intake_app", "/ru/", env, folder / "site.log", workers=1)
        )
        busy = stack.enter_context(
            gunicorn("intake_app", "/ru/", busy_env, folder / "busy.log", workers=1)
        )
        _spend_lookups(busy)
        yield Site(url, busy, code, instance, env)


def _post(
    url: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("POST", path)
        sent = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(body)),
            **(headers or {}),
        }
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def _spend_lookups(busy_url: str) -> None:
    """Use up this client's receipt look-ups on the busy site (empty posts are cheap)."""
    for _ in range(LOOKUPS_PER_HOUR):
        status, _headers, _body = _post(busy_url, "/ru/receipt/")
        assert status == 400, status


def new_page(browser, **options):
    context = browser.new_context(**{"locale": "ru-RU", **options})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    return context.new_page()


# --- what a witness does ------------------------------------------------------------------


def fill_minimal_testimony(page, lang: str, statement: str | None = None) -> None:
    page.fill("#statement", STATEMENT[lang] if statement is None else statement)
    page.check("input[name=relation][value=saw]")
    page.check("input[name=consent][value=counts]")


def send(page, selector: str = "main form button[type=submit]") -> None:
    with page.expect_navigation():
        page.click(selector)


def voice_recording(path: Path, seconds: float = 0.5) -> Path:
    """An invented WAV: half a second of near-silence."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x01\x00" * int(8000 * seconds))
    path.write_bytes(out.getvalue())
    return path


def _serve_too_large(site: Site, lang: str):
    """The server's own answer to a body larger than it accepts, handed to the browser.

    The browser cannot be made to send hundreds of megabytes in a test; the page is what
    the server answers when told that much is coming (it refuses before reading). It is
    asked before the browser sends, so the browser's own connections never wait on it."""
    status, headers, body = _post(
        site.url,
        "/%s/testimony/" % lang,
        headers={"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(1024**4)},
    )
    assert status == 413, status

    def handle(route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(status=status, headers=dict(headers), body=body)

    return handle


PAGE_NAMES = (
    "welcome",
    "form",
    "form with errors",
    "receipt",
    "receipt for print",
    "follow-up login",
    "follow-up with replies",
    "leave",
    "not found",
    "too large",
    "busy form",
    "too many",
)


def visit_every_page(page, site: Site, lang: str) -> Iterator[str]:
    """Bring ``page`` to each kind of intake page in ``lang``; yield its name there."""
    base = "%s/%s" % (site.url, lang)
    page.goto(base + "/")
    yield "welcome"
    page.goto(base + "/testimony/")
    yield "form"
    send(page)
    yield "form with errors"
    fill_minimal_testimony(page, lang)
    send(page)
    assert page.locator("p.code").count() == 1, page.content()
    yield "receipt"
    send(page, "main form.no-print button")
    yield "receipt for print"
    page.goto(base + "/receipt/")
    yield "follow-up login"
    page.fill("#receipt", site.code)
    send(page)
    assert page.locator("article.message").count() == 1, page.content()
    yield "follow-up with replies"
    page.goto(base + "/notes")
    yield "leave"
    page.goto(base + "/no-such-page")
    yield "not found"
    page.route(base + "/testimony/", _serve_too_large(site, lang))
    page.goto(base + "/testimony/")
    fill_minimal_testimony(page, lang)
    send(page)
    page.unroute(base + "/testimony/")
    yield "too large"
    busy = "%s/%s" % (site.busy_url, lang)
    page.goto(busy + "/testimony/")
    fill_minimal_testimony(page, lang)
    send(page)
    yield "busy form"
    page.goto(busy + "/receipt/")
    page.fill("#receipt", site.code)
    send(page)
    yield "too many"
