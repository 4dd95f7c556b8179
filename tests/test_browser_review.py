"""A testimony's round trip in a real browser: witness, reviewer, witness again.

Both faces run under gunicorn on free loopback ports over one instance made by
``testimony init``; Debian's chromium, driven by Playwright with JavaScript off, plays
both people. The witness sends a statement with a photo; an operator creates a reviewer
with the ``testimony reviewer add`` command; the reviewer logs in with a TOTP code, reads
the statement, sees the photo's working copy load, and writes a question; the witness
comes back with the receipt code and reads it. Everything here is invented.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pyotp
import pytest

from . import test_browser_intake as witness_side
from .conftest import ROOT
from .test_browser_intake import RECEIPT_CODE, STEP_TIMEOUT_MS, _photo, gunicorn

pytestmark = pytest.mark.browser

# The witness-side browser test's fixtures: a fresh instance made by ``testimony init``,
# and a page in headless chromium with JavaScript off (skipped if either is missing).
instance_env = witness_side.instance_env
browser_page = witness_side.browser_page

STATEMENT = (
    "Invented statement: at dawn two trucks blocked the road out of Sortobe and the "
    "drivers took away the phones of everyone who was filming."
)
REPLY = "Invented question: do you remember the colour of the trucks?"
PASSWORD = "Invented reviewer passphrase 2020"


@pytest.fixture
def faces(instance_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str, dict]]:
    env = {**instance_env, "TESTIMONY_SCRYPT_WORK_FACTOR": "4"}
    with ExitStack() as stack:
        intake = stack.enter_context(
            gunicorn("intake_app", "/en/", env, tmp_path / "intake.log", workers=1)
        )
        review = stack.enter_context(
            gunicorn("review_app", "/login", env, tmp_path / "review.log", workers=1)
        )
        yield intake, review, env


def test_a_reviewer_answers_a_witness_in_the_browser(browser_page, faces, tmp_path: Path):
    intake, review, env = faces
    witness = browser_page
    _photo(tmp_path / "trucks.jpg", (90, 90, 200), with_exif=True)

    # An operator creates a reviewer with the command; what comes
    # in from now on is sealed to the reviewer's key.
    command = Path(sys.executable).parent / "testimony"
    created = subprocess.run(
        [str(command), "reviewer", "add", "alma"],
        cwd=ROOT,
        env={**env, "TESTIMONY_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert created.returncode == 0, created.stderr
    secret = re.search(r"TOTP secret: ([A-Z2-7]+)", created.stdout).group(1)

    # The witness sends a statement and a photo, with JavaScript off.
    witness.goto(intake + "/en/testimony/")
    witness.fill("#statement", STATEMENT)
    witness.select_option("#place", "sortobe")
    witness.check("input[name=relation][value=saw]")
    witness.check("input[name=consent][value=counts]")
    witness.set_input_files("#files", str(tmp_path / "trucks.jpg"))
    with witness.expect_navigation():
        witness.click("form button[type=submit]")
    code = witness.locator("p.code").inner_text().strip()
    assert RECEIPT_CODE.match(code), witness.content()

    # The reviewer, in a browser of their own, logs in with a code from the authenticator.
    context = witness.context.browser.new_context(java_script_enabled=False, locale="en-GB")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        desk = context.new_page()
        desk.goto(review + "/")
        assert desk.url.startswith(review + "/login")
        desk.fill("#name", "alma")
        desk.fill("#password", PASSWORD)
        desk.fill("#code", pyotp.TOTP(secret).now())
        with desk.expect_navigation():
            desk.click("form button[type=submit]")
        assert desk.url == review + "/", desk.content()
        session = [c for c in context.cookies() if c["name"] == "review_session"]
        assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"

        with desk.expect_navigation():
            desk.click("a[href='/testimony/1']")
        assert desk.locator(".statement .text").inner_text().strip() == STATEMENT
        photo = desk.locator("#files img")
        assert photo.count() == 1
        photo.scroll_into_view_if_needed()
        desk.wait_for_function("img => img.complete", arg=photo.element_handle())
        assert photo.evaluate("img => img.naturalWidth") == 800
        assert photo.evaluate("img => img.naturalHeight") == 600

        desk.fill("#reply-text", REPLY)
        with desk.expect_navigation():
            desk.click("form[action='/testimony/1/reply'] button[type=submit]")
        assert REPLY in desk.locator("#messages").inner_text()
    finally:
        context.close()

    # The witness comes back with the receipt and reads the question.
    witness.goto(intake + "/en/receipt/")
    witness.fill("#receipt", code)
    with witness.expect_navigation():
        witness.click("form button[type=submit]")
    messages = witness.locator("article.message .text")
    assert messages.count() == 1, witness.content()
    assert messages.inner_text().strip() == REPLY
