"""A witness's whole visit in a real browser, with JavaScript off, in Russian.

Debian's chromium, driven by Playwright, talks to a real gunicorn server (two workers)
serving ``wsgi:intake_app`` on a loopback port, with a fresh instance made by
``testimony init``. The witness writes a statement, answers the required questions,
attaches two photos (one with EXIF capture time and GPS), sends it and reads the receipt
code; then comes back with the code, adds a statement and a file and sees the
confirmation. Finally the stored testimony is opened with the recovery identity, as a
reviewer would offline: two statements, three attachments, and the first photo's sealed
original byte-identical to what was uploaded.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import FAST_ARGON2, ROOT, database_env

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_SECONDS = 30
STEP_TIMEOUT_MS = 20_000

STATEMENT = (
    "Ночью 7 февраля 2020 года в Масанчи горели дома. Полицейские стояли у моста "
    "и не вмешивались, когда люди просили о помощи."
)
ADDITION = "Дополнение: утром 8 февраля соседей увезли в отделение в Кордае."
RECEIPT_CODE = re.compile(r"^\d{4}( \d{4}){4}$")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
def gunicorn(
    app: str,
    ready_path: str,
    env: dict[str, str],
    log_path: Path,
    workers: int = 2,
    extra_args: tuple[str, ...] = (),
) -> Iterator[str]:
    """gunicorn serving ``wsgi:<app>`` on a free loopback port, stopped afterwards;
    ``extra_args`` go to gunicorn's command line."""
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                "127.0.0.1:%d" % port,
                "--workers",
                str(workers),
                "--timeout",
                "120",
                *extra_args,
                "wsgi:%s" % app,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + SERVER_START_SECONDS
            while not _answers(port, ready_path):
                if proc.poll() is not None:
                    pytest.fail(
                        "gunicorn (%s) exited with %s: %s"
                        % (app, proc.returncode, log_path.read_text(errors="replace"))
                    )
                if time.monotonic() > deadline:
                    pytest.fail(
                        "gunicorn (%s) did not answer within %d s" % (app, SERVER_START_SECONDS)
                    )
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
def instance_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a fresh instance initialised with ``testimony init``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTIMONY_")}
    env.update(
        FAST_ARGON2,
        TESTIMONY_INSTANCE_PATH=str(tmp_path / "instance"),
        **database_env(tmp_path / "instance"),
    )
    command = Path(sys.executable).parent / "testimony"
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "review.cli"]
    result = subprocess.run(
        [*argv, "init"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "instance" / "recovery-key.txt").is_file()
    return env


@pytest.fixture
def server(instance_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """gunicorn with two workers serving the intake on a free loopback port."""
    with gunicorn("intake_app", "/ru/", instance_env, tmp_path / "gunicorn.log") as url:
        yield url


@contextmanager
def open_browser() -> Iterator[object]:
    """Debian's chromium under Playwright, or a skip that says what is missing."""
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed at %s (apt-get install chromium)" % CHROMIUM
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    """A page in a fresh headless chromium context with JavaScript disabled."""
    with open_browser() as browser:
        context = browser.new_context(java_script_enabled=False, locale="ru-RU")
        context.set_default_timeout(STEP_TIMEOUT_MS)
        yield context.new_page()
        context.close()


def _photo(path: Path, colour: tuple[int, int, int], with_exif: bool) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (800, 600), colour)
    for x in range(0, 800, 40):  # some structure, so the JPEG is not trivially small
        image.paste((255 - colour[0], colour[1], 255 - colour[2]), (x, 0, x + 20, 600))
    out = io.BytesIO()
    if with_exif:
        exif = Image.Exif()
        exif[0x010F] = "TestCam"
        exif[0x0110] = "Witness Phone 1"
        exif.get_ifd(0x8769)[0x9003] = "2020:02:07 23:15:00"  # DateTimeOriginal
        gps = exif.get_ifd(0x8825)
        gps[1] = "N"
        gps[2] = (43.0, 12.0, 30.0)
        gps[3] = "E"
        gps[4] = (75.0, 6.0, 0.0)
        image.save(out, "JPEG", quality=90, exif=exif)
    else:
        image.save(out, "JPEG", quality=90)
    data = out.getvalue()
    path.write_bytes(data)
    return data


def _stored(instance_env: dict[str, str]) -> dict[str, object]:
    """Everything the one stored testimony holds, unsealed with the recovery identity."""
    import crypto
    from store import settings as settings_module
    from store.blobs import read_item, unpad_document
    from store.db import Database
    from store.models import Testimony

    settings = settings_module.load(instance_env)
    identities = crypto.parse_identities_file(
        (settings.instance_path / "recovery-key.txt").read_text()
    )
    db = Database(settings)
    try:
        with db.sessions() as session:
            testimonies = list(session.query(Testimony))
            assert len(testimonies) == 1
            testimony = testimonies[0]

            def unseal(blob_id: int) -> bytes:
                return read_item(session, blob_id, identities)

            statements = [unpad_document(unseal(s.blob_id))["text"] for s in testimony.statements]
            attachments = [
                {
                    "original": unseal(a.original_blob_id),
                    "metadata": json.loads(unseal(a.metadata_blob_id)),
                    "kind": a.kind,
                    "working": unseal(a.working_blob_id) if a.working_blob_id else None,
                }
                for a in testimony.attachments
            ]
            details = unpad_document(unseal(testimony.details_blob_id))
            return {
                "statements": statements,
                "attachments": attachments,
                "details": details,
                "place": testimony.place,
                "language": testimony.language,
            }
    finally:
        db.dispose()


def test_witness_submits_and_follows_up_without_javascript(
    browser_page, server: str, instance_env: dict[str, str], tmp_path: Path
) -> None:
    page = browser_page
    photo_gps = _photo(tmp_path / "photo-gps.jpg", (180, 40, 40), with_exif=True)
    _photo(tmp_path / "photo-plain.jpg", (40, 90, 160), with_exif=False)
    later = _photo(tmp_path / "photo-later.jpg", (40, 160, 60), with_exif=False)

    # The form, in Russian, with no script at all on the page.
    page.goto(server + "/ru/testimony/")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.locator("script").count() == 0
    assert page.locator("#place option[value=masanchi]").inner_text() == "Масанчи"

    page.fill("#statement", STATEMENT)
    page.fill("#when_approx", "ночь на 8 февраля 2020")
    page.select_option("#place", "masanchi")
    page.check("input[name=relation][value=saw]")
    page.check("input[name=consent][value=counts]")
    page.set_input_files(
        "#files", [str(tmp_path / "photo-gps.jpg"), str(tmp_path / "photo-plain.jpg")]
    )
    assert page.input_value("#website") == ""  # the honeypot stays empty
    with page.expect_navigation():
        page.click("form button[type=submit]")

    code_element = page.locator("p.code")
    assert code_element.count() == 1, page.content()
    code = code_element.inner_text().strip()
    assert RECEIPT_CODE.match(code), code
    assert page.url.startswith(server + "/ru/testimony/")

    # Coming back with the receipt.
    page.goto(server + "/ru/receipt/")
    page.fill("#receipt", code)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert page.locator("form[action='/ru/receipt/add']").count() == 1, page.content()

    page.fill("#statement", ADDITION)
    page.set_input_files("#files", str(tmp_path / "photo-later.jpg"))
    with page.expect_navigation():
        page.click("form[action='/ru/receipt/add'] button[type=submit]")
    notice = page.locator("p.notice[role=status]")
    assert notice.count() == 1, page.content()
    assert page.locator(".summary, p.error").count() == 0
    assert page.locator("html").get_attribute("lang") == "ru"

    # What the server keeps, opened with the organisation's recovery identity.
    stored = _stored(instance_env)
    assert stored["statements"] == [STATEMENT, ADDITION]
    assert stored["language"] == "ru"
    assert stored["place"] == "masanchi"
    assert stored["details"]["relation"] == "saw"
    attachments = stored["attachments"]
    assert len(attachments) == 3
    assert [a["metadata"]["declared_name"] for a in attachments] == [
        "photo-gps.jpg",
        "photo-plain.jpg",
        "photo-later.jpg",
    ]
    first = attachments[0]
    assert first["original"] == photo_gps  # bit for bit
    assert first["kind"] == "image"
    assert first["metadata"]["size"] == len(photo_gps)
    exif = first["metadata"]["exif"]
    assert exif["captured"] == "2020:02:07 23:15:00"
    assert exif["gps"] == {"lat": pytest.approx(43.2083333), "lon": pytest.approx(75.1)}
    assert first["working"] is not None and b"Exif" not in first["working"][:4096]
    assert attachments[2]["original"] == later
