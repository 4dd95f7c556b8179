"""No secret and no testimony in what real gunicorn servers print, with every logger at
DEBUG.

Both faces run under gunicorn as an operator chasing a problem might start them:
``--log-level debug`` and a ``--log-config`` file that sets the root logger and every
logger it names (gunicorn's, Werkzeug, Flask, SQLAlchemy's engine and pool, each of
Pillow's modules) to DEBUG, with stdout and stderr captured. (A logging configuration
file also turns gunicorn's access log on, with addresses, User-Agents and exact times.)
Over real HTTP, a witness sends a statement, a contact and a photo whose EXIF names a
camera and a GPS datum, comes back to add to it; a reviewer logs in with password and
TOTP, reads the testimony, reveals the contact, downloads the original, writes a note
and a reply, searches, logs out; the witness reads the reply. Then everything the two
servers printed is scanned for the canaries, the receipt, the password, the TOTP code,
every cookie value, key material, the address and the User-Agent. Everything is invented.
"""

from __future__ import annotations

import http.client
import io
import re
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

import pyotp
import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from .review_helpers import make_desk
from .test_browser_intake import gunicorn
from .witness_site import instance_env

CANARY = "Syvanov-canary-5807"
AGENT = "InventedCanaryAgent/9.1 (Syvanov-agent)"
# The clients connect from an address of their own (all of 127/8 is loopback), so that
# it cannot be confused with the servers' (bound to 127.0.0.1, as is the database).
CLIENT_ADDRESS = "127.0.0.2"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
CODE = re.compile(r'<p class="code"[^>]*>([0-9 ]+)</p>')
LOGGERS = (
    "gunicorn.error",
    "gunicorn.access",
    "werkzeug",
    "flask.app",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "PIL",
    "PIL.Image",
    "PIL.ImageFile",
    "PIL.TiffImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
    "intake",
    "review",
    "store",
    "crypto",
    "flask_limiter",
)


def _log_config(path: Path) -> Path:
    """A fileConfig that sends every record of every named logger, at DEBUG, to stderr."""
    keys = ["root"] + [name.replace(".", "_") for name in LOGGERS]
    sections = [
        "[loggers]\nkeys=%s\n" % ",".join(keys),
        "[handlers]\nkeys=stderr\n",
        "[formatters]\nkeys=plain\n",
        "[logger_root]\nlevel=DEBUG\nhandlers=stderr\n",
    ]
    for name in LOGGERS:
        sections.append(
            "[logger_%s]\nlevel=DEBUG\nhandlers=stderr\npropagate=0\n"
            "qualname=%s\n" % (name.replace(".", "_"), name)
        )
    sections += [
        "[handler_stderr]\nclass=StreamHandler\nlevel=DEBUG\nformatter=plain\nargs=(sys.stderr,)\n",
        "[formatter_plain]\nformat=%(asctime)s %(name)s %(levelname)s %(message)s\n",
    ]
    path.write_text("\n".join(sections))
    return path


def _photo() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = CANARY + " camera make"
    exif[0x0110] = CANARY + " model"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (43.0, 12.0, 30.0), "E", (75.0, 6.0, 0.0)
    gps[0x12] = CANARY + " datum"
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "olive").save(out, "JPEG", exif=exif)
    return out.getvalue()


class Visitor:
    """One client of one face over plain HTTP, keeping its cookies, never following
    redirects, always sending the same invented User-Agent."""

    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.cookies: dict[str, str] = {}
        self.seen_cookies: set[str] = set()

    def request(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=60, source_address=(CLIENT_ADDRESS, 0)
        )
        headers = {"User-Agent": AGENT}
        if self.cookies:
            headers["Cookie"] = "; ".join("%s=%s" % item for item in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                value = rest.split(";", 1)[0]
                if value:
                    self.cookies[name] = value
                    self.seen_cookies.add(value)
                else:
                    self.cookies.pop(name, None)
            return response.status, text
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, str]:
        return self.request("GET", path)

    def post(
        self, path: str, fields: dict[str, str], token_from: str | None = None
    ) -> tuple[int, str]:
        """A form post, with the CSRF token of the page ``token_from`` (or ``path``)."""
        data = {**fields, "csrf_token": self.token(token_from or path)}
        return self.request(
            "POST", path, urlencode(data).encode(), "application/x-www-form-urlencoded"
        )

    def post_files(
        self, path: str, fields: dict[str, str], files: list[tuple[str, bytes]]
    ) -> tuple[int, str]:
        data = MultiDict({**fields, "csrf_token": self.token(path)})
        for name, content in files:
            data.add("files", FileStorage(io.BytesIO(content), name, "files", "image/jpeg"))
        boundary, body = encode_multipart(data)
        return self.request("POST", path, body, "multipart/form-data; boundary=%s" % boundary)

    def token(self, page: str) -> str:
        status, html = self.get(page)
        match = CSRF.search(html)
        assert status == 200 and match, (page, status)
        return match.group(1)


def test_real_servers_at_debug_print_nothing_secret(tmp_path: Path):
    with pytest.MonkeyPatch.context() as monkeypatch:
        desk = make_desk(tmp_path, monkeypatch)
        try:
            admin = desk.add_reviewer("Ma Dzhun-test", admin=True)
        finally:
            desk.close()
    env = instance_env(tmp_path / "instance", TESTIMONY_DATABASE_URL=desk.settings.database_url)
    config = _log_config(tmp_path / "logging.ini")
    loud = ("--log-level", "debug", "--log-config", str(config), "--capture-output")
    logs = {face: tmp_path / ("%s.log" % face) for face in ("intake", "review")}
    with ExitStack() as stack:
        intake_url = stack.enter_context(
            gunicorn("intake_app", "/en/", env, logs["intake"], workers=1, extra_args=loud)
        )
        review_url = stack.enter_context(
            gunicorn("review_app", "/login", env, logs["review"], workers=1, extra_args=loud)
        )
        witness = Visitor(intake_url)
        status, page = witness.post_files(
            "/ru/testimony/",
            {
                "statement": CANARY + " statement",
                "relation": "saw",
                "consent": "quotes",
                "contact": CANARY + " contact",
                "when_approx": CANARY + " night",
                "place_other": CANARY + " place",
            },
            [(CANARY + " name.jpg", _photo())],
        )
        assert status == 200, page
        receipt = CODE.search(page).group(1)
        status, thread = witness.post("/ru/receipt/", {"receipt": receipt})
        assert status == 200 and "/ru/receipt/add" in thread, thread
        status, added = witness.post(
            "/ru/receipt/add",
            {"receipt": receipt, "statement": CANARY + " addition"},
            token_from="/ru/receipt/",
        )
        assert status == 200, added

        reviewer = Visitor(review_url)
        code = pyotp.TOTP(admin.totp_secret).now()
        status, _ = reviewer.post(
            "/login", {"name": admin.name, "password": admin.password, "code": code}
        )
        assert status == 302 and "review_session" in reviewer.cookies, status
        status, shown = reviewer.get("/testimony/1")
        assert status == 200 and CANARY + " statement" in shown
        original = re.search(r"/testimony/file/\d+/original", shown)
        assert original, shown
        original = original.group(0)
        for path, fields in (
            ("/testimony/1/note", {"note-text": CANARY + " note"}),
            ("/testimony/1/reply", {"reply-text": CANARY + " reply"}),
            ("/testimony/1/contact", {}),
            (original, {}),
        ):
            status, _ = reviewer.post(path, fields, token_from="/testimony/1")
            assert status in (200, 302), (path, status)
        status, found = reviewer.get("/search/?q=" + CANARY)
        assert status == 200 and "/testimony/1" in found
        assert reviewer.post("/logout", {}, token_from="/")[0] == 302

        status, thread = witness.post("/ru/receipt/", {"receipt": receipt})
        assert CANARY + " reply" in thread
    printed = {
        face: path.read_text(encoding="utf-8", errors="replace") for face, path in logs.items()
    }

    text = "\n".join(printed.values())
    # The logging was really on: SQL, gunicorn's own debug lines, both faces.
    assert "SELECT" in printed["intake"] and "SELECT" in printed["review"]
    assert "gunicorn.error DEBUG" in text
    cookies = witness.seen_cookies | reviewer.seen_cookies
    assert len(cookies) >= 3
    secrets = {
        "canary": "canary-5807",
        "receipt": receipt,
        "receipt digits": receipt.replace(" ", ""),
        "password": admin.password,
        "key material": "AGE-SECRET-KEY",
        "reviewer key": str(admin.identity),
        "client address": CLIENT_ADDRESS,
        "User-Agent": "InventedCanaryAgent",
        "agent canary": "Syvanov-agent",
        "GPS position": "43.208",
    }
    secrets.update({"cookie %d" % n: value for n, value in enumerate(sorted(cookies))})
    found = {what: _around(text, secret) for what, secret in secrets.items() if secret in text}
    # Six digits also end every timestamp SQLAlchemy logs (as microseconds, after a dot).
    totp = re.search(r"(?<![\d.])%s(?!\d)" % code, text)
    if totp:
        found["TOTP code"] = _around(text, code, totp.start())
    assert not found, "\n".join("%s: %r" % item for item in found.items())


def _around(text: str, secret: str, at: int | None = None) -> str:
    at = text.index(secret) if at is None else at
    return text[max(0, at - 120) : at + 60]
