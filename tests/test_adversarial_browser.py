"""Hostile text in a real browser, with JavaScript on and the Content-Security-Policy
taken away: escaping alone must keep it inert.

Markup, script, ``<img onerror>``, ``<svg onload>``, template syntax, SQL, a U+202E bidi
override and control characters go into a statement, a contact, a file name, a note, a
reply, a supporting passage, an incident's title and description, a place's name, a
violation type's label and an approved excerpt (``adversarial_helpers.hostile_desk``).
Both faces then run under gunicorn and Debian's chromium, with JavaScript enabled,
opens the pages that show them: the witness's follow-up thread with the reply and the
form sent back with its errors; the reviewer's inbox, testimony page and revealed
contact, search results, incident list and page, catalogue, excerpt page and export
page. Every answer passes through ``page.route``, which removes the CSP header, so a
payload that reached the page as markup would run. Any dialog, page error, console
error (a broken ``<img src=x>`` logs one) or the ``window.__pwned`` marker the payloads
set fails the test; the payload must be visible as text. A control page with one
payload unescaped shows that the watch would see it.

A file name holding U+202E, quoted in the witness's error sentence, must not turn the
rest of the sentence around: the name is wrapped in Unicode isolates. Everything here is
invented.
"""

from __future__ import annotations

from contextlib import ExitStack
from urllib.parse import quote

import pyotp
import pytest

from intake.views import isolated

from .adversarial_helpers import HOSTILE, HOSTILE_SHOWN, INCIDENT, hostile_desk
from .test_browser_intake import STEP_TIMEOUT_MS, gunicorn, open_browser
from .witness_site import instance_env

BIDI_NAME = "report\u202egpj.exe"
REFUSED = "is not a photo, audio, video or PDF file we can accept."

# Where in the text node the two words are drawn, left to right.
_WORD_POSITIONS = """([el, first, second]) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const a = node.data.indexOf(first), b = node.data.indexOf(second);
    if (a < 0 || b < 0) continue;
    const range = document.createRange();
    const box = (at, word) => {
      range.setStart(node, at); range.setEnd(node, at + word.length);
      const r = range.getBoundingClientRect(); return [r.left, r.top];
    };
    return [box(a, first), box(b, second)];
  }
  return null;
}"""


class Watch:
    """What a payload that ran would leave behind on a page: dialogs, page errors,
    console errors, the ``window.__pwned`` marker."""

    def __init__(self, page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append("pageerror: %s" % error))
        page.on("console", self._console)

    def _console(self, message) -> None:
        # A page refused with 400 (the form sent back) is logged as a failed load of
        # itself; anything else that fails to load (an ``<img src=x>``) counts.
        own = message.location.get("url") == self.page.url and "status of 400" in message.text
        if message.type == "error" and not own:
            self.errors.append("console: %s (%s)" % (message.text, message.location.get("url")))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def ran(self) -> list[str]:
        marker = self.page.evaluate("() => window.__pwned")
        found = (
            self.dialogs
            + self.errors
            + (["window.__pwned = %r" % marker] if marker is not None else [])
        )
        self.dialogs, self.errors = [], []
        return found


def _without_csp(unescape: str | None = None):
    """A route handler passing every answer on without its Content-Security-Policy (and,
    for the control, with ``unescape``'s escaped form turned back into markup)."""

    def handle(route) -> None:
        response = route.fetch(max_redirects=0)
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() != "content-security-policy"
        }
        body = response.body()
        if unescape and "text/html" in headers.get("content-type", ""):
            escaped = (
                unescape.replace("&", "&amp;")
                .replace("<", "&lt;")
                .replace(">", "&gt;")
                .replace('"', "&#34;")
                .replace("'", "&#39;")
            )
            body = body.replace(escaped.encode(), unescape.encode())
        route.fulfill(status=response.status, headers=headers, body=body)

    return handle


def _open(page, url: str) -> str:
    answer = page.goto(url)
    assert answer is not None and answer.ok, (url, answer and answer.status)
    assert "content-security-policy" not in answer.headers  # escaping alone is tested
    return page.locator("body").inner_text()


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as monkeypatch:
        hostile = hostile_desk(tmp_path, monkeypatch)
        hostile.desk.close()
    env = instance_env(
        tmp_path / "instance", TESTIMONY_DATABASE_URL=hostile.desk.settings.database_url
    )
    # Threads: the answers are fetched beside the browser, which may hold a connection
    # of its own open that a single synchronous worker would wait on.
    threads = ("--threads", "4")
    with ExitStack() as stack:
        intake = stack.enter_context(
            gunicorn(
                "intake_app", "/en/", env, tmp_path / "intake.log", workers=1, extra_args=threads
            )
        )
        review = stack.enter_context(
            gunicorn(
                "review_app", "/login", env, tmp_path / "review.log", workers=1, extra_args=threads
            )
        )
        browser = stack.enter_context(open_browser())
        yield hostile, intake, review, browser


def _context(browser, unescape: str | None = None):
    context = browser.new_context(
        java_script_enabled=True, locale="en-GB", viewport={"width": 1600, "height": 900}
    )
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.route("**/*", _without_csp(unescape))
    return context


def _log_in(page, review: str, person) -> None:
    page.goto(review + "/login")
    page.fill("#name", person.name)
    page.fill("#password", person.password)
    page.fill("#code", pyotp.TOTP(person.totp_secret).now())
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert page.url == review + "/", page.url


@pytest.mark.browser
def test_hostile_text_stays_text_in_a_browser_without_csp(hostile_site):
    hostile, intake, review, browser = hostile_site
    context = _context(browser)
    page = context.new_page()
    watch = Watch(page)
    shown: dict[str, str] = {}

    # The witness reads the reviewer's reply in the follow-up thread.
    _open(page, intake + "/en/receipt/")
    page.fill("#receipt", hostile.receipt)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    shown["thread"] = page.locator("body").inner_text()
    assert watch.ran() == [], "thread"
    # ... and gets the form back, errors and all, after a file that is refused.
    _open(page, intake + "/en/testimony/")
    page.fill("#statement", HOSTILE)
    page.fill("#contact", HOSTILE)
    page.check("input[name=relation][value=saw]")
    page.check("input[name=consent][value=counts]")
    page.set_input_files(
        "#files",
        {
            "name": HOSTILE.replace("/", "") + ".exe",
            "mimeType": "application/octet-stream",
            "buffer": b"MZ invented",
        },
    )
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    shown["form sent back"] = page.locator("body").inner_text()
    assert watch.ran() == [], "form sent back"

    _log_in(page, review, hostile.viewer)
    pages = {
        "inbox": "/",
        "testimony": "/testimony/1",
        "search": "/search/?q=" + quote(HOSTILE[:120]),
        "incidents": "/incidents/",
        "incident": "/incidents/" + INCIDENT,
        "catalogue": "/catalogue/",
        "excerpt": "/excerpts/%d" % hostile.excerpt_id,
        "export": "/export/",
    }
    for name, path in pages.items():
        shown[name] = _open(page, review + path)
        assert watch.ran() == [], name
        assert page.locator("script, img[src=x], svg[onload]").count() == 0, name
    _open(page, review + "/testimony/1")
    with page.expect_navigation():
        page.click("form[action='/testimony/1/contact'] button[type=submit]")
    shown["contact"] = page.locator("body").inner_text()
    assert watch.ran() == [], "contact"
    context.close()

    for name in (
        "thread",
        "form sent back",
        "testimony",
        "contact",
        "search",
        "incident",
        "catalogue",
        "excerpt",
        "export",
    ):
        missing = [text for text in HOSTILE_SHOWN if text not in shown[name]]
        # The search page shows what was searched for: the payload's first 120 characters.
        assert missing == (["DROP TABLE testimony"] if name == "search" else []), name
        assert "<script>window.__pwned='script'" in shown[name] or name == "search", name
    assert "\u202egnp.exe" in shown["testimony"]  # kept as typed


@pytest.mark.browser
def test_the_watch_sees_a_payload_that_reached_the_page_as_markup(hostile_site):
    """The control: the witness's thread with one payload of the reply unescaped on the
    way to the browser."""
    hostile, intake, _review, browser = hostile_site
    payload = "<img src=x onerror=\"window.__pwned='img';alert(2)\">"
    assert payload in HOSTILE
    context = _context(browser, unescape=payload)
    page = context.new_page()
    watch = Watch(page)
    _open(page, intake + "/en/receipt/")
    page.fill("#receipt", hostile.receipt)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    page.wait_for_function("() => window.__pwned === 'img'")
    ran = watch.ran()
    context.close()
    assert "2" in ran and "window.__pwned = 'img'" in ran, ran


def test_file_names_are_isolated_in_the_witness_sentences():
    assert isolated(BIDI_NAME) == "\u2068report\u202egpj.exe\u2069"
    # A pop-isolate of the name's own cannot end the isolate early.
    assert isolated("a\u2069\u202eb") == "\u2068a\u202eb\u2069"


@pytest.mark.browser
def test_a_bidi_override_in_a_file_name_does_not_turn_the_sentence_around(hostile_site):
    _hostile, intake, _review, browser = hostile_site
    context = _context(browser)
    page = context.new_page()
    _open(page, intake + "/en/testimony/")
    page.fill("#statement", "Invented statement for a test.")
    page.check("input[name=relation][value=saw]")
    page.check("input[name=consent][value=counts]")
    page.set_input_files(
        "#files",
        {"name": BIDI_NAME, "mimeType": "application/x-msdownload", "buffer": b"MZ invented"},
    )
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    error = page.locator("p.error", has_text="report")
    assert error.count() == 1, page.content()
    assert REFUSED in error.inner_text()
    positions = page.evaluate(_WORD_POSITIONS, [error.element_handle(), "is not", "accept"])
    context.close()
    assert positions, "the sentence is not one text node"
    (is_x, is_y), (accept_x, accept_y) = positions
    assert is_y == accept_y  # one line
    assert is_x < accept_x  # read left to right, as written
