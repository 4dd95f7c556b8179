"""Mapping testimony to a documented incident in a real browser, with JavaScript off.

Both faces run under gunicorn on free loopback ports over a fresh instance (the
fixtures of the other browser tests). An operator loads a small catalogue with
``testimony incidents import`` and creates an administrator with ``testimony reviewer
add``; three witnesses send statements through the intake, each giving a different
date; the reviewer logs in with a TOTP code and, on each testimony's page, links it to
the same incident with the witness's role, a confidence and a passage copied from the
statement (one link made with the keyboard alone), and ticks violation types. The
incident page then counts two independent corroborating testimonies (the third is
hearsay), lists all three on a timeline by the date the witness gave and counts the
violations reported; marking one testimony not credible brings the count down to one.
A passage that is not in the statement is refused. Every name, place and statement
here is invented.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from . import test_browser_review as review_side
from .conftest import ROOT
from .test_browser_intake import RECEIPT_CODE, STEP_TIMEOUT_MS

pytestmark = pytest.mark.browser

# The other browser tests' fixtures: a fresh instance made by ``testimony init``, a page
# in headless chromium with JavaScript off (skipped when chromium or Playwright is
# missing), and both faces under gunicorn on that instance.
instance_env = review_side.instance_env
browser_page = review_side.browser_page
faces = review_side.faces

PASSWORD = "Invented catalogue keeper passphrase 7"
INCIDENT = "velmora-bridge-night"
PARENT = "velmora-week"

CATALOGUE = {
    "format": "testimony-incidents/1",
    "violation_types": [
        {
            "slug": "inv-violence",
            "parent": None,
            "labels": {
                "en": "Invented violence",
                "ru": "Вымышленное насилие",
                "kk": "Ойдан шығарылған зорлық",
            },
        },
        {
            "slug": "inv-beating",
            "parent": "inv-violence",
            "labels": {
                "en": "Invented beating",
                "ru": "Вымышленное избиение",
                "kk": "Ойдан шығарылған соққы",
            },
        },
        {
            "slug": "inv-arson",
            "parent": "inv-violence",
            "labels": {
                "en": "Invented arson",
                "ru": "Вымышленный поджог",
                "kk": "Ойдан шығарылған өртеу",
            },
        },
    ],
    "places": [
        {
            "slug": "velmora",
            "names": {"en": "Velmora", "ru": "Велмора", "kk": "Велмора"},
            "district": "Invented district",
            "kind": "village",
            "lat": 43.1,
            "lon": 75.2,
        },
        {
            "slug": "tashkuyu",
            "names": {"en": "Tashkuyu", "ru": "Ташкуйу", "kk": "Ташқұйы"},
            "district": "Invented district",
            "kind": "town",
            "lat": 43.3,
            "lon": 75.5,
        },
    ],
    "incidents": [
        {
            "slug": PARENT,
            "title": {"en": "Invented unrest week in Velmora"},
            "description": {"en": "An invented week of unrest around Velmora and Tashkuyu."},
            "start": "2020-02-05",
            "end": "2020-02-12",
            "precision": "day",
            "places": ["velmora", "tashkuyu"],
            "violation_types": ["inv-violence"],
            "sources": [{"title": "Invented report", "publisher": "Invented monitor"}],
        },
        {
            "slug": INCIDENT,
            "title": {"en": "Invented night at the Velmora bridge"},
            "description": {"en": "An invented night of beatings and fires at the bridge."},
            "start": "2020-02-07",
            "precision": "approximate",
            "places": ["velmora"],
            "violation_types": ["inv-beating", "inv-arson"],
            "figures": {"injured": 4},
            "sources": [],
            "related": [{"incident": PARENT, "relation": "part_of"}],
        },
    ],
}

# Three invented witnesses, in the order they write; the dates they give are not in
# that order, so the timeline has to sort them.
WITNESSES = [
    {
        "statement": "Invented statement one: on the second night men in black beat the "
        "shopkeeper at the Velmora bridge and set fire to his kiosk.",
        "when": "2020-02-08",
        "passage": "men in black beat the shopkeeper",
        "role": "eyewitness",
        "confidence": "high",
        "tags": ["inv-beating", "inv-arson"],
    },
    {
        "statement": "Invented statement two: they dragged me out of my car near the bridge "
        "and beat me with sticks until I could not stand.",
        "when": "2020-02-07",
        "passage": "beat me with sticks",
        "role": "victim",
        "confidence": "medium",
        "tags": ["inv-beating"],
    },
    {
        "statement": "Invented statement three: my neighbour told me that people were beaten "
        "at the bridge that week; I was not there myself.",
        "when": "2020-02-09",
        "passage": "people were beaten at the bridge",
        "role": "hearsay",
        "confidence": "medium",
        "tags": ["inv-beating"],
    },
]
KEYBOARD_WITNESS = 1  # the second testimony is linked with the keyboard alone


def _testimony_command(args: list[str], env: dict[str, str]) -> str:
    command = Path(sys.executable).parent / "testimony"
    result = subprocess.run(
        [str(command), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


class Authenticator:
    """TOTP codes for a reviewer, never the same time step twice (a used one is refused)."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last_step = 0

    def code(self) -> str:
        # The server accepts the steps next to the current one, if newer than the last.
        step = max(int(time.time()) // self.totp.interval, self.last_step + 1)
        self.last_step = step
        return self.totp.generate_otp(step)


def _login(context, review: str, name: str, authenticator: Authenticator):
    page = context.new_page()
    page.goto(review + "/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.fill("#code", authenticator.code())
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert page.url == review + "/", page.content()
    return page


def _submit_statement(context, intake: str, witness: dict[str, object]) -> str:
    page = context.new_page()
    page.goto(intake + "/en/testimony/")
    page.fill("#statement", str(witness["statement"]))
    page.fill("#when_date", str(witness["when"]))
    page.check("input[name=relation][value=saw]")
    page.check("input[name=consent][value=counts]")
    with page.expect_navigation():
        page.click("form button[type=submit]")
    code = page.locator("p.code").inner_text().strip()
    assert RECEIPT_CODE.match(code), page.content()
    page.close()
    return code


def _focused(page) -> str:
    """The focused element, as ``tag#id`` or ``tag[name=value]``, read without page script."""
    return page.evaluate(
        "() => { const e = document.activeElement; if (!e) return '';"
        " return e.tagName.toLowerCase() + (e.id ? '#' + e.id"
        " : e.name ? '[' + e.name + '=' + (e.value || '') + ']' : ''); }"
    )


def _tab_to(page, target: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused(page) == target:
            return
    pytest.fail("Tab never reached %s" % target)


def _link_with_keyboard(page, passage: str) -> None:
    """Fill and send the link form with keys alone: the second incident in the list (by
    start), the first role (eyewitness), confidence moved on to high with the arrow keys,
    the passage typed."""
    page.keyboard.press("Tab")  # from the top of the page, then on through it
    _tab_to(page, "select#incident")
    page.keyboard.press("ArrowDown")  # "—" → the week (earliest start)
    page.keyboard.press("ArrowDown")  # → the night at the bridge
    assert page.input_value("#incident") == INCIDENT
    page.keyboard.press("Tab")
    assert _focused(page) == "input[role=eyewitness]"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert _focused(page) == "input[confidence=low]"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert _focused(page) == "input[confidence=high]"
    page.keyboard.press("Tab")
    assert _focused(page) == "textarea#passage"
    page.keyboard.insert_text(passage)  # as a paste would
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.form.action").endswith("/links")
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _link_with_pointer(page, role: str, confidence: str, passage: str) -> None:
    page.select_option("#incident", INCIDENT)
    page.check("input[name=role][value=%s]" % role)
    page.check("input[name=confidence][value=%s]" % confidence)
    page.fill("#passage", passage)
    with page.expect_navigation():
        page.click("form.link-form button[type=submit]")


def _corroborating(page, review: str) -> str:
    page.goto(review + "/incidents/" + INCIDENT)
    return page.locator("#corroborating").inner_text().strip()


def test_testimony_mapped_to_an_incident_in_the_browser(browser_page, faces, tmp_path: Path):
    started = time.monotonic()
    intake, review, env = faces
    browser = browser_page.context.browser

    # The operator loads the catalogue and creates an administrator, with the commands.
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(json.dumps(CATALOGUE, ensure_ascii=False), encoding="utf-8")
    loaded = _testimony_command(["incidents", "import", str(catalogue)], env)
    assert "created 2 place, 3 violation_type, 2 incident" in loaded, loaded
    created = _testimony_command(
        ["reviewer", "add", "vesna", "--admin"], {**env, "TESTIMONY_PASSWORD": PASSWORD}
    )
    authenticator = Authenticator(re.search(r"TOTP secret: ([A-Z2-7]+)", created).group(1))

    # Three witnesses, each in a browser of their own, send their statements.
    for witness in WITNESSES:
        context = browser.new_context(java_script_enabled=False, locale="en-GB")
        context.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            _submit_statement(context, intake, witness)
        finally:
            context.close()

    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        desk = _login(context, review, "vesna", authenticator)

        for number, witness in enumerate(WITNESSES, start=1):
            desk.goto("%s/testimony/%d" % (review, number))
            assert desk.locator(".statement .text").inner_text().strip() == witness["statement"]
            if number == 3:
                # A passage the witness never wrote is refused, visibly, and nothing is linked.
                _link_with_pointer(
                    desk, "hearsay", "medium", "Invented words the witness never wrote"
                )
                error = desk.locator("#mapping p.error[role=alert]")
                assert error.inner_text().strip() == (
                    "The passage must be copied from the statement."
                )
                assert desk.locator("#mapping table").count() == 0
            if number - 1 == KEYBOARD_WITNESS:
                desk.goto("%s/testimony/%d" % (review, number))  # focus starts at the top
                _link_with_keyboard(desk, str(witness["passage"]))
                witness = {**witness, "role": "eyewitness", "confidence": "high"}
            else:
                _link_with_pointer(
                    desk, str(witness["role"]), str(witness["confidence"]), str(witness["passage"])
                )
            assert desk.locator("#mapping p.error").count() == 0, desk.content()
            rows = desk.locator("#mapping table tbody tr")
            assert rows.count() == 1
            cells = [c.strip() for c in rows.first.locator("td").all_inner_texts()]
            assert cells[0].startswith("Invented night at the Velmora bridge")
            assert cells[1:4] == [
                {"eyewitness": "Eyewitness", "victim": "Victim", "hearsay": "Hearsay"}[
                    str(witness["role"])
                ],
                str(witness["confidence"]).capitalize(),
                witness["passage"],
            ]

            for tag in witness["tags"]:
                desk.check("form.tags input[name=tag][value=%s]" % tag)
            with desk.expect_navigation():
                desk.click("form.tags button[type=submit]")
            checked = desk.locator("form.tags input[name=tag]:checked")
            assert sorted(checked.evaluate_all("els => els.map(e => e.value)")) == sorted(
                witness["tags"]
            )

        # The incident: two independent corroborating testimonies (the third is hearsay),
        # all three on the timeline by the date each witness gave, the violations counted.
        assert _corroborating(desk, review) == "2"
        timeline = desk.locator("ol.timeline li")
        assert timeline.count() == 3
        assert [m.strip() for m in timeline.locator(".meta").all_inner_texts()] == [
            "2020-02-07",
            "2020-02-08",
            "2020-02-09",
        ]
        assert timeline.locator("a").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))"
        ) == ["/testimony/2", "/testimony/1", "/testimony/3"]
        assert "Hearsay" in timeline.nth(2).inner_text()
        reported = desk.locator("h2:has-text('Violations reported') + ul li")
        assert [r.strip() for r in reported.all_inner_texts()] == [
            "Invented beating: 3",
            "Invented arson: 1",
        ]
        related = desk.locator("h2:has-text('Related incidents') + ul li")
        assert related.inner_text().strip() == "part of: Invented unrest week in Velmora"

        desk.goto(review + "/incidents/")
        assert desk.locator("td.count[data-incident=%s]" % INCIDENT).inner_text() == "2"
        assert desk.locator("td.count[data-incident=%s]" % PARENT).inner_text() == "0"

        # The first witness is found not credible: only the victim's testimony counts.
        desk.goto(review + "/testimony/1")
        desk.select_option("#status", "not_credible")
        with desk.expect_navigation():
            desk.click("form[action='/testimony/1/status'] button[type=submit]")
        assert "Not credible" in desk.locator("dl.facts").inner_text()
        assert _corroborating(desk, review) == "1"
        assert desk.locator("ol.timeline li").count() == 3
        desk.goto(review + "/incidents/")
        assert desk.locator("td.count[data-incident=%s]" % INCIDENT).inner_text() == "1"
    finally:
        context.close()
    assert time.monotonic() - started < 60
