"""A testimony's round trip in a real browser: witness, reviewer, witness again.

Both faces run under gunicorn on free loopback ports over one instance made by
``testimony init``; Debian's chromium, driven by Playwright with JavaScript off, plays
both people. The witness sends a statement with a photo; an operator creates a reviewer
with the ``testimony reviewer add`` command; the reviewer logs in with a TOTP code, reads
the statement, sees the photo's working copy load, and writes a question; the witness
comes back with the receipt code and reads it. Everything here is invented.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pyotp
import pytest

from . import test_browser_intake as witness_side
from .conftest import ROOT
from .test_browser_intake import (
    RECEIPT_CODE,
    SERVER_START_SECONDS,
    STEP_TIMEOUT_MS,
    _free_port,
    _photo,
)

pytestmark = pytest.mark.browser

# The witness-side browser test's fixtures: a fresh instance made by ``testimony init``,
# and a page in headless chromium with JavaScript off (skipped if either is missing).
instance_env = witness_side.instance_env
browser_page = witness_side.browser_page

STATEMENT = ("Invented statement: at dawn two trucks blocked the road out of Sortobe and the "
             "drivers took away the phones of everyone who was filming.")
REPLY = "Invented question: do you remember the colour of the trucks?"
PASSWORD = "Invented reviewer passphrase 2020"


def _answers(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status == 200
    except OSError:
        return False


@contextmanager
def _gunicorn(app: str, ready_path: str, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """gunicorn serving ``wsgi:<app>`` on a free loopback port, stopped afterwards."""
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:%d" % port,
             "--workers", "1", "--timeout", "120", "wsgi:%s" % app],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + SERVER_START_SECONDS
            while not _answers(port, ready_path):
                if proc.poll() is not None:
                    pytest.fail("gunicorn (%s) exited: %s" % (app, log_path.read_text()))
                if time.monotonic() > deadline:
                    pytest.fail("gunicorn (%s) did not answer within %d s"
                                % (app, SERVER_START_SECONDS))
                time.sleep(0.1)
            yield "http://127.0.0.1:%d" % port
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def faces(instance_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str, dict]]:
    env = {**instance_env, "TESTIMONY_SCRYPT_WORK_FACTOR": "4"}
    with ExitStack() as stack:
        intake = stack.enter_context(_gunicorn("intake_app", "/en/", env,
                                               tmp_path / "intake.log"))
        review = stack.enter_context(_gunicorn("review_app", "/login", env,
                                               tmp_path / "review.log"))
        yield intake, review, env


def test_a_reviewer_answers_a_witness_in_the_browser(browser_page, faces, tmp_path: Path):
    intake, review, env = faces
    witness = browser_page
    _photo(tmp_path / "trucks.jpg", (90, 90, 200), with_exif=True)

    # An operator creates a reviewer with the command; what comes
    # in from now on is sealed to the reviewer's key.
    command = Path(sys.executable).parent / "testimony"
    created = subprocess.run([str(command), "reviewer", "add", "alma"], cwd=ROOT,
                             env={**env, "TESTIMONY_PASSWORD": PASSWORD}, capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
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
