"""The witness's visit in Debian's chromium, as frightened witnesses on old phones meet it.

- Usable at 320, 768 and 1280 px wide and at 200% zoom, in Russian: no sideways
  scrolling, every control on the screen and at least 44 px tall, no text cut off. Each
  page is saved as a PNG under tests/artifacts/screens/ to be looked at.
- Tor Browser's "Safest" level (no script, no remote fonts, no SVG): the whole visit,
  from the welcome page to a reply read with the code, works with all three refused.
- A witness who would rather speak sends only a voice recording.
- A form sent after its token expired comes back with everything typed, and nothing of it
  is kept on the server; nothing typed is kept in the browser either, not even on disk
  in the session files a browser writes to restore tabs.
- "Leave quickly" goes to a neutral page, forgets the session, and Back shows an empty
  form.
- The keyboard: a skip link first, the form's fields in order, the error summary takes
  focus and its links lead to the fields.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from .conftest import ROOT
from .test_browser_intake import CHROMIUM, CHROMIUM_ARGS, RECEIPT_CODE
from .witness_site import (
    STATEMENT,
    Site,
    fill_minimal_testimony,
    new_page,
    open_browser,
    send,
    start_site,
    visit_every_page,
    voice_recording,
)

pytestmark = pytest.mark.browser

SCREENS = ROOT / "tests" / "artifacts" / "screens"
VIEWPORTS = {  # name: (CSS width, device pixels per CSS pixel)
    "320": (320, 1),
    "768": (768, 1),
    "1280": (1280, 1),
    "1280-zoom200": (640, 2),  # a 1280 px window at 200% zoom lays out 640 CSS px
}
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const root = document.scrollingElement;
  const width = root.clientWidth;
  if (root.scrollWidth > width) {
    problems.push('scrolls sideways: ' + root.scrollWidth + ' > ' + width);
  }
  const shown = el => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== 'hidden'
      && !el.closest('.trap') && !el.closest('.skip');
  };
  const name = el => el.outerHTML.slice(0, 90);
  // Tap targets: controls, buttons, header and footer links, whole radio rows. Links
  // inside a sentence of the main text are exempt (WCAG 2.5.8).
  const targets = [...document.querySelectorAll(
    'input:not([type=hidden]):not([type=radio]), textarea, select, button, .choice, ' +
    'a.button, a.leave, header a, footer a')].filter(shown);
  for (const el of targets) {
    const box = el.getBoundingClientRect();
    if (box.height < 44) problems.push('under 44 px tall (' + box.height + '): ' + name(el));
  }
  const all = [...document.querySelectorAll('main *, header *, footer *')].filter(shown);
  for (const el of all) {
    const box = el.getBoundingClientRect();
    if (box.left < -0.5 || box.right > width + 0.5) problems.push('off the screen: ' + name(el));
  }
  const blocks = [...document.querySelectorAll(
    'p, li, h1, h2, label, legend, button, a.button, a.leave, .code, .summary')].filter(shown);
  for (const el of blocks) {
    if (el.scrollWidth > el.clientWidth + 1) problems.push('text cut off: ' + name(el));
  }
  return {problems: problems, targets: targets.length};
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    with start_site(tmp_path_factory.mktemp("witness-browser")) as s:
        yield s


@pytest.fixture(scope="module")
def browser(site) -> Iterator[object]:
    with open_browser() as b:
        yield b


@pytest.fixture
def page(browser):
    """A page with JavaScript off, as witnesses at Tor Browser's Safest level have it."""
    page = new_page(browser, java_script_enabled=False)
    yield page
    page.context.close()


def _database(site: Site):
    from store import settings as settings_module
    from store.db import Database

    return Database(settings_module.load(site.env))


def _count(site: Site, model) -> int:
    db = _database(site)
    try:
        with db.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)))
    finally:
        db.dispose()


# --- small screens and zoom -----------------------------------------------------------------


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_fits_small_screens_and_zoom_in_russian(browser, site, viewport) -> None:
    width, scale = VIEWPORTS[viewport]
    page = new_page(
        browser,
        java_script_enabled=False,
        viewport={"width": width, "height": 800},
        device_scale_factor=scale,
    )
    folder = SCREENS / ("ru-" + viewport)
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    targets = 0
    try:
        for number, name in enumerate(visit_every_page(page, site, "ru")):
            page.screenshot(
                path=str(folder / ("%02d-%s.png" % (number, name.replace(" ", "-")))),
                full_page=True,
            )
            result = page.evaluate(LAYOUT_PROBLEMS)
            targets += result["targets"]
            if result["problems"]:
                found[name] = result["problems"]
    finally:
        page.context.close()
    assert targets > 100  # the check looked at the controls
    assert found == {}


# --- Tor Browser's Safest level ----------------------------------------------------------------


def _safest(page) -> list[str]:
    """Refuse what Safest refuses besides script (off in the context): fonts and SVG.
    Returns the list of refused requests, which should stay empty."""
    refused: list[str] = []

    def handle(route) -> None:
        request = route.request
        if request.resource_type in ("font", "image", "media", "script") or request.url.split("?")[
            0
        ].endswith((".svg", ".svgz", ".woff", ".woff2", ".ttf")):
            refused.append(request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", handle)
    return refused


def test_the_whole_visit_works_at_tor_browsers_safest_level(page, site, tmp_path) -> None:
    refused = _safest(page)
    photo = tmp_path / "photo.jpg"
    from .intake_helpers import jpeg

    photo.write_bytes(jpeg())
    page.goto(site.url + "/ru/")
    send(page, "main a.button")
    assert page.url.endswith("/ru/testimony/")
    fill_minimal_testimony(page, "ru")
    page.set_input_files("#files", str(photo))
    send(page)
    code = page.locator("p.code").inner_text().strip()
    assert RECEIPT_CODE.match(code)
    send(page, "main form.no-print button")
    assert page.locator("p.code").inner_text().strip() == code  # the page for paper

    page.goto(site.url + "/ru/receipt/")
    page.fill("#receipt", site.code)
    send(page)
    assert "Где стояла машина?" in page.locator("article.message").inner_text()
    page.fill("#statement", "Машина стояла у магазина (вымышленное дополнение).")
    send(page)
    assert page.locator("p.notice[role=status]").count() == 1
    assert page.locator("script, svg").count() == 0
    assert refused == []  # nothing was even asked for

    stylesheet = page.request.get(site.url + "/static/style.css").text()
    assert "@font-face" not in stylesheet and "url(" not in stylesheet


# --- voice instead of writing -------------------------------------------------------------------


def test_a_witness_who_prefers_to_speak_sends_only_a_recording(page, site, tmp_path) -> None:
    from store.models import Attachment

    recording = voice_recording(tmp_path / "голос.wav")
    audio_before = _count(site, Attachment)
    page.goto(site.url + "/kk/testimony/")
    help_text = page.locator("#statement-help").inner_text()
    assert "дауыс жазбасын" in help_text  # the page says a recording will do
    fill_minimal_testimony(page, "kk", statement="")
    page.set_input_files("#files", str(recording))
    send(page)
    assert page.locator("p.code").count() == 1, page.content()
    db = _database(site)
    try:
        with db.sessions() as session:
            newest = session.scalars(select(Attachment).order_by(Attachment.id.desc())).first()
            assert newest is not None and newest.kind == "audio"
    finally:
        db.dispose()
    assert _count(site, Attachment) == audio_before + 1


# --- an expired form, and nothing kept ------------------------------------------------------------

LONG_STATEMENT = "\n\n".join(
    "Абзац %d. Вымышленный рассказ для проверки: Иван Тестов шёл домой, когда у моста "
    "остановилась машина без номеров. Из неё вышли трое и спросили, где живёт семья Сыванов." % n
    for n in range(1, 31)
)


def test_an_expired_form_comes_back_with_everything_typed(page, site) -> None:
    from store.models import Testimony

    page.goto(site.url + "/ru/testimony/")
    page.fill("#statement", LONG_STATEMENT)
    page.fill("#when_approx", "ночь на 8 февраля")
    page.select_option("#place", "masanchi")
    page.fill("#place_other", "у моста")
    page.check("input[name=relation][value=happened_to_family]")
    page.fill("#contact", "Вымышленный контакт: Ma Dzhun-test")
    page.check("input[name=consent][value=quotes]")
    # The session (and with it the form's token) is gone, as after the browser was
    # closed and its tab restored, or Tor Browser's "New identity".
    page.context.clear_cookies()
    before = _count(site, Testimony)
    send(page)

    notice = page.locator("p.notice[role=status]")
    assert notice.count() == 1 and "открыта слишком долго" in notice.inner_text()
    assert page.input_value("#statement") == LONG_STATEMENT.replace("\n", "\n")
    assert page.input_value("#when_approx") == "ночь на 8 февраля"
    assert page.input_value("#place") == "masanchi"
    assert page.input_value("#place_other") == "у моста"
    assert page.is_checked("input[name=relation][value=happened_to_family]")
    assert page.input_value("#contact") == "Вымышленный контакт: Ma Dzhun-test"
    assert page.is_checked("input[name=consent][value=quotes]")
    assert _count(site, Testimony) == before  # nothing of it was kept

    send(page)  # sent again, it goes through
    assert page.locator("p.code").count() == 1, page.content()
    assert _count(site, Testimony) == before + 1


def _files_holding(folder: Path, text: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(text.encode(encoding) in data for encoding in ("utf-8", "utf-16-le")):
                found.append(str(path.relative_to(folder)))
    return found


def _type_and_walk_away(browser, site: Site, profile: Path, keep_history: bool) -> list[str]:
    """Type into the form in a browser with a profile on disk, go elsewhere, close the
    browser; return the profile's files that hold what was typed."""
    secret = "НезаконченныйВымышленныйРассказ"
    context = browser.browser_type.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        java_script_enabled=False,
    )
    try:
        page = context.new_page()
        page.goto(site.url + "/ru/testimony/")
        if keep_history:
            page.evaluate("document.querySelector('main form').removeAttribute('autocomplete')")
        page.fill("#statement", secret + " 1")
        page.fill("#when_approx", secret + " 2")
        page.fill("#contact", secret + " 3")
        page.goto(site.url + "/ru/")
        time.sleep(0.5)  # let the browser write its session files
    finally:
        context.close()
    return _files_holding(profile, secret)


def test_nothing_typed_is_kept_in_the_browsers_files(browser, site, tmp_path) -> None:
    assert _type_and_walk_away(browser, site, tmp_path / "profile", keep_history=False) == []
    # The same form without autocomplete="off": the browser writes what was typed into
    # its session files on disk, which is what the form's setting prevents.
    assert _type_and_walk_away(browser, site, tmp_path / "control", keep_history=True) != []


# --- leave quickly -----------------------------------------------------------------------------


def test_leave_quickly_goes_to_a_neutral_page_and_back_shows_an_empty_form(page, site) -> None:
    page.goto(site.url + "/ru/testimony/")
    title = page.title()
    page.fill("#statement", STATEMENT["ru"])
    assert page.context.cookies() != []  # the form's session
    leave = page.locator("header a.leave")
    assert leave.is_visible() and leave.inner_text() == "Быстро уйти"
    send(page, "header a.leave")

    assert page.url.endswith("/ru/notes")
    assert page.title() == title == "Notes"
    text = page.locator("body").inner_text()
    for telling in ("свидетель", "Кордай", "код", "правозащит", "Быстро уйти"):
        assert telling not in text
    assert page.locator("a, form").count() == 0  # no way back to the form from here
    assert page.context.cookies() == []  # the session is forgotten

    page.go_back()
    assert page.url.endswith("/ru/testimony/")
    assert page.input_value("#statement") == ""


# --- the keyboard -------------------------------------------------------------------------------


def _focused(page) -> str:
    return page.evaluate(
        "document.activeElement.id || document.activeElement.className || "
        "document.activeElement.tagName"
    )


def test_keyboard_skip_link_focus_order_and_error_summary(page, site) -> None:
    page.goto(site.url + "/ru/testimony/")
    page.keyboard.press("Tab")
    assert _focused(page) == "skip"
    page.keyboard.press("Tab")
    assert _focused(page) == "leave"  # the way out is second, before anything else
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    assert _focused(page) == "main"

    order: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        here = _focused(page)
        if not order or order[-1] != here:  # a date field has a stop per part
            order.append(here)
        if here == "BUTTON":
            break
    assert order == [
        "statement",
        "files",
        "relation-0",
        "when_date",
        "when_approx",
        "place",
        "place_other",
        "contact",
        "consent-0",
        "BUTTON",
    ]

    send(page)  # nothing filled in
    # autofocus applies once the page has loaded, which a loaded machine may delay.
    page.wait_for_function("document.activeElement.className === 'summary'", timeout=10_000)
    assert _focused(page) == "summary"
    links = page.locator(".summary a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        "#statement",
        "#relation-0",
        "#consent-0",
    ]
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert _focused(page) == "relation-0"
    assert page.get_attribute("#relation-0", "aria-invalid") == "true"
    described = page.get_attribute("#statement", "aria-describedby").split()
    assert described == ["statement-help", "statement-error"]
    assert page.locator("#statement-error").inner_text().strip()
