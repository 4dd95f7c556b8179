"""Soak: the whole service under load and faults, and proof that nothing acknowledged is
lost (invariant 5 of DESIGN.md), measured on loopback.

What runs, all of its own (the machine's shared PostgreSQL and Redis are never touched):
a PostgreSQL cluster made with ``initdb`` in a temporary folder and a ``redis-server``,
each on a free port; an instance made by ``testimony init``, the intake's limited role
applied with ``testimony db roles --apply`` (the intake connects as that role), two
reviewers made with ``testimony reviewer add``; both faces under gunicorn with
``--workers`` sync workers each (default 4) and ``--preload`` (as docs/deploy.md advises:
a killed worker is replaced by a fork of the loaded app), rate limits and the reviewers'
sessions in Redis.

Load: ``--witnesses`` threads (default 32) send ``--submissions`` testimonies (default
2,000), every ``--photo-every``-th (default 4th) with a photo of about 150 KB with EXIF,
each as a browser does: GET the form (cookie and CSRF token), then POST it, from a loopback
source address of its own (the per-address limit is meant for one person). A witness who
gets the "try again" page (503) or whose connection is cut tries again, as a person would,
until acknowledged (a receipt code on the page). Meanwhile ``--reviewers`` logged-in
reviewers (default 2) browse: inbox pages and testimony pages, which unseal; a reviewer
sent back to the login page (their session was in the Redis that restarted) logs in again.

Faults, spread over the load: a worker killed with SIGKILL in the middle of an upload (a
slow upload of its own, the worker found by the connection it holds), a busy worker
killed at random, PostgreSQL restarted (``pg_ctl restart -m fast``), Redis killed and
started again. ``--faults N`` rounds of the four (default 2).

Afterwards, with the servers stopped: every acknowledged receipt is turned into its lookup
hash (Argon2id with the instance's salt and cost) and must lead to a testimony whose
statement, unsealed with the recovery key, is the one that witness sent, with the photo
bit for bit (SHA-256) when one was sent; no testimony is partial (one statement, the
attachments its statement says it came with); ``testimony check --identity RECOVERY``
passes (every chunk, header, recipient, no orphan, the audit chain, every item unsealed
to the end); a sample of receipts opens through the witness face itself.

Figures printed: submissions/s (acknowledged over the load's wall time), POST latency
p50/p95/max, faults injected, what witnesses and reviewers saw (200s, 503 "try again"
pages and whether each was the translated page, cut connections, 500s), acknowledged vs
found. Exit status 0 only if nothing was lost, nothing partial, no 500 and no 5xx outside
a fault, every 503 was the translated page, and the check passed.

    .venv/bin/python bench/soak.py [--submissions 2000] [--witnesses 32] [--reviewers 2]
                                   [--workers 4] [--faults 2] [--photo-every 4]
                                   [--fast-kdf] [--keep DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import http.client
import io
import itertools
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")
]

from tests.servers import PostgresCluster, RedisServer, free_port  # noqa: E402

FAST_KDF = {
    "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_ARGON2_TIME_COST": "1",
    "TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_RECEIPT_ARGON2_TIME_COST": "1",
    "TESTIMONY_SCRYPT_WORK_FACTOR": "10",
}
ROLE = "testimony_intake"
ROLE_PASSWORD = "invented-soak-intake-password"
FORM = "/ru/testimony/"
BOUNDARY = "----TestimonySoak41c7"
TRY_AGAIN = "Попробуйте ещё раз через несколько минут".encode()
_TOKEN = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')
_RECEIPT = re.compile(rb"\b(\d{4} \d{4} \d{4} \d{4} \d{4})\b")
_TESTIMONY_LINK = re.compile(rb'href="/testimony/(\d+)"')
_TAG = re.compile(r"\[(soak-\d+-[pta])\]")
GRACE = 5.0  # seconds after a fault ends during which its after-effects still count
STATEMENT = (
    "Вымышленное свидетельство для нагрузочной проверки: ночью у моста собрались "
    "люди, полицейские стояли в стороне, соседей увезли в отделение. "
)


# --- the servers ---------------------------------------------------------------------------


class Gunicorn:
    """One face under gunicorn; its workers can be listed and killed."""

    def __init__(self, app: str, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                "127.0.0.1:%d" % self.port,
                "--workers",
                str(workers),
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
                "--preload",
                "wsgi:%s" % app,
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def workers(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        found.append(int(entry.name))
        return found

    def wait_ready(self, path: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited: see %s" % self.log.name)
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
                if status in (200, 302):
                    return
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer %s in %ss" % (path, timeout))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _testimony(env: dict[str, str], *args: str, password: str | None = None) -> str:
    full = dict(env)
    if password:
        full["TESTIMONY_PASSWORD"] = password
    done = subprocess.run(
        [sys.executable, "-m", "review.cli", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError("testimony %s: %s" % (" ".join(args), done.stderr[-2000:]))
    return done.stdout


@dataclass
class Reviewer:
    name: str
    password: str
    totp: str


@dataclass
class Stack:
    work: Path
    postgres: PostgresCluster
    redis: RedisServer
    owner_env: dict[str, str]
    intake: Gunicorn
    review: Gunicorn
    reviewers: list[Reviewer]

    @property
    def recovery_file(self) -> Path:
        return self.work / "instance" / "recovery-key.txt"


def start_stack(
    work: Path,
    postgres: PostgresCluster,
    redis: RedisServer,
    workers: int,
    reviewers: int,
    fast_kdf: bool,
) -> Stack:
    owner_url = postgres.createdb("testimony")
    base = {k: v for k, v in os.environ.items() if not k.startswith("TESTIMONY_")}
    base.update(
        TESTIMONY_INSTANCE_PATH=str(work / "instance"),
        TESTIMONY_LIMITER_STORAGE_URI=redis.url,
        TESTIMONY_LIMITER_PREFIX="soak",
        TESTIMONY_SESSION_STORAGE_URI=redis.url,
    )
    if fast_kdf:
        base.update(FAST_KDF)
    owner_env = {**base, "TESTIMONY_DATABASE_URL": owner_url}
    _testimony(owner_env, "init")
    _testimony(
        {**owner_env, "SOAK_INTAKE_PASSWORD": ROLE_PASSWORD},
        "db",
        "roles",
        "--apply",
        "--intake-role",
        ROLE,
        "--password-env",
        "SOAK_INTAKE_PASSWORD",
    )
    people = []
    for n in range(reviewers):
        name, password = "soak-reviewer-%d" % n, "Invented soak passphrase %d!" % n
        printed = _testimony(owner_env, "reviewer", "add", name, password=password)
        people.append(Reviewer(name, password, re.search(r"TOTP secret: (\S+)", printed).group(1)))  # type: ignore[union-attr]
    intake_env = {
        **base,
        "TESTIMONY_DATABASE_URL": postgres.url("testimony", user=ROLE, password=ROLE_PASSWORD),
        "TESTIMONY_SUBMISSIONS_PER_HOUR": "10000000",
    }
    intake = Gunicorn("intake_app", intake_env, workers, work / "intake.log")
    review = Gunicorn("review_app", owner_env, workers, work / "review.log")
    try:
        intake.wait_ready(FORM)
        review.wait_ready("/login")
    except BaseException:
        intake.stop()
        review.stop()
        raise
    return Stack(work, postgres, redis, owner_env, intake, review, people)


# --- witnesses -----------------------------------------------------------------------------

_sources = itertools.count()
_source_lock = threading.Lock()


def next_source() -> str:
    """A loopback source address per connection: 127.3.0.1, 127.3.0.2, ..."""
    with _source_lock:
        n = next(_sources)
    return "127.%d.%d.%d" % (3 + n // (254 * 254) % 200, n // 254 % 254, n % 254 + 1)


def connect(port: int, timeout: float = 120) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(next_source(), 0)
    )


def _part(name: str, value: str) -> bytes:
    return (
        '--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (BOUNDARY, name, value)
    ).encode()


def form_body(token: str, statement: str, photo: tuple[str, bytes] | None) -> bytes:
    name, content = photo or ("", b"")
    return b"".join(
        [
            _part("csrf_token", token),
            _part("statement", statement),
            _part("when_approx", "ночью"),
            _part("place", "masanchi"),
            _part("place_other", ""),
            _part("relation", "saw"),
            (
                '--%s\r\nContent-Disposition: form-data; name="files"; filename="%s"\r\n'
                "Content-Type: %s\r\n\r\n"
                % (BOUNDARY, name, "image/jpeg" if photo else "application/octet-stream")
            ).encode(),
            content,
            b"\r\n",
            _part("contact", ""),
            _part("consent", "counts"),
            _part("website", ""),
            ("--%s--\r\n" % BOUNDARY).encode(),
        ]
    )


def make_photos(count: int, seed: int) -> list[bytes]:
    """Invented photos of about 150 KB: noise (so they do not compress), with EXIF."""
    from PIL import Image

    rng = random.Random(seed)
    photos = []
    for n in range(count):
        image = Image.frombytes("RGB", (320, 240), rng.randbytes(320 * 240 * 3))
        exif = Image.Exif()
        exif[0x0110] = "Invented Phone %d" % n
        out = io.BytesIO()
        image.save(out, "JPEG", quality=95, exif=exif)
        photos.append(out.getvalue())
    return photos


@dataclass
class Attempt:
    status: int  # 0: the connection was cut
    seconds: float  # of the POST
    at: float  # when the attempt began (GET) ...
    end: float = 0.0  # ... and when its answer came
    translated: bool = True

    def __post_init__(self) -> None:
        self.end = self.end or time.monotonic()


@dataclass
class Submission:
    n: int
    photo: int | None
    code: str | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def tag(self) -> str:
        """``soak-N-p`` (with a photo) or ``soak-N-t`` (text only); ``-a`` marks the
        uploads cut on purpose (one audio file)."""
        return "soak-%05d-%s" % (self.n, "p" if self.photo is not None else "t")

    def statement(self) -> str:
        return "[%s] %s" % (self.tag, STATEMENT * 3)


def _exchange(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, list[str]]:
    conn = connect(port)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), response.headers.get_all("Set-Cookie") or []
    finally:
        conn.close()


def submit_once(port: int, item: Submission, photos: list[bytes]) -> Attempt:
    started = time.monotonic()
    try:
        status, page, cookies = _exchange(port, "GET", FORM)
        if status != 200:
            return Attempt(status, 0.0, started, translated=status != 503 or TRY_AGAIN in page)
        token = _TOKEN.search(page)
        assert token, "no CSRF token on the form"
        cookie = "; ".join(c.split(";", 1)[0] for c in cookies)
        photo = (
            ("photo-%d.jpg" % item.photo, photos[item.photo]) if item.photo is not None else None
        )
        body = form_body(token.group(1).decode(), item.statement(), photo)
        posted = time.monotonic()
        status, page, _ = _exchange(
            port,
            "POST",
            FORM,
            body,
            {"Content-Type": "multipart/form-data; boundary=" + BOUNDARY, "Cookie": cookie},
        )
        seconds = time.monotonic() - posted
    except (OSError, http.client.HTTPException):
        return Attempt(0, time.monotonic() - started, started)
    if status == 200:
        found = _RECEIPT.search(page)
        item.code = found.group(1).decode() if found else None
    return Attempt(status, seconds, started, translated=status != 503 or TRY_AGAIN in page)


def witness(
    port: int,
    queue: list[Submission],
    lock: threading.Lock,
    photos: list[bytes],
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        with lock:
            if not queue:
                return
            item = queue.pop()
        for attempt_number in range(60):
            attempt = submit_once(port, item, photos)
            item.attempts.append(attempt)
            if item.code or stop.is_set():
                break
            time.sleep(min(0.25 * (attempt_number + 1), 2.0))  # a person waits, then retries


# --- reviewers -----------------------------------------------------------------------------


@dataclass
class Browsing:
    pages: Counter = field(default_factory=Counter)  # (kind, status)
    logins: int = 0
    events: list[tuple[float, float, int]] = field(default_factory=list)  # 5xx, cuts


class ReviewerClient:
    def __init__(self, port: int, person: Reviewer) -> None:
        self.port, self.person = port, person
        self.cookies: dict[str, str] = {}
        self.last_step = -1

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str]:
        headers = {"Cookie": "; ".join("%s=%s" % kv for kv in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            page = response.read()
            for cookie in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = cookie.partition("=")
                value = rest.split(";", 1)[0]
                if value and "Max-Age=0" not in cookie and "expires=Thu, 01 Jan 1970" not in cookie:
                    self.cookies[name] = value
                else:
                    self.cookies.pop(name, None)
            return response.status, page, response.headers.get("Location", "")
        finally:
            conn.close()

    def login(self) -> int:
        import urllib.parse

        import pyotp

        totp = pyotp.TOTP(self.person.totp)
        step = int(time.time()) // 30
        while step <= self.last_step:  # each code is accepted once
            time.sleep(0.5)
            step = int(time.time()) // 30
        self.last_step = step
        status, page, _ = self._request("GET", "/login")
        if status != 200:
            return status
        token = _TOKEN.search(page)
        assert token, "no CSRF token on the login page"
        body = urllib.parse.urlencode(
            {
                "csrf_token": token.group(1).decode(),
                "name": self.person.name,
                "password": self.person.password,
                "code": totp.at(step * 30),
            }
        ).encode()
        status, _page, _ = self._request("POST", "/login", body)
        return status

    def browse(self, stop: threading.Event, record: Browsing, lock: threading.Lock) -> None:
        rng = random.Random(self.person.name)
        seen: list[int] = []
        began = time.monotonic()
        logged_in = False
        while not stop.is_set():
            try:
                if not logged_in:
                    status = self.login()
                    with lock:
                        record.logins += 1
                        record.pages["login", status] += 1
                    logged_in = status == 302
                    if not logged_in:
                        time.sleep(1)
                    continue
                began = time.monotonic()
                if seen and rng.random() < 0.6:
                    kind, path = "testimony", "/testimony/%d" % rng.choice(seen[-200:])
                else:
                    kind, path = "inbox", "/?page=%d" % rng.randint(1, 3)
                status, page, location = self._request("GET", path)
            except (OSError, http.client.HTTPException):
                kind, status, location, page = "cut", 0, "", b""
            if status == 302 and "/login" in location:
                logged_in = False  # the session copy went with a Redis restart
            if kind == "inbox" and status == 200:
                seen.extend(int(i) for i in _TESTIMONY_LINK.findall(page))
            with lock:
                record.pages[kind, status] += 1
                if status >= 500 or status == 0:
                    record.events.append((began, time.monotonic(), status))
            time.sleep(0.05)


# --- faults --------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    start: float
    end: float = 0.0
    detail: str = ""


def _connection_owner(server_port: int, client: tuple[str, int], pids: list[int]) -> int | None:
    """The worker holding the server side of the connection from ``client``."""

    def hexaddr(address: str, port: int) -> str:
        return "%s:%04X" % ("".join("%02X" % int(p) for p in reversed(address.split("."))), port)

    local, remote = hexaddr("127.0.0.1", server_port), hexaddr(*client)
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            inode = fields[9]
    if inode is None:
        return None
    target = "socket:[%s]" % inode
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir("/proc/%d/fd" % pid):
                with contextlib.suppress(OSError):
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                        return pid
    return None


_cuts = itertools.count()


def kill_mid_upload(stack: Stack) -> Fault:
    """Start a slow upload of 3 MiB, and SIGKILL the worker receiving it halfway."""
    fault = Fault("worker killed mid-upload", time.monotonic())
    port = stack.intake.port
    status, page, cookies = _exchange(port, "GET", FORM)
    token = _TOKEN.search(page)
    if status != 200 or not token:
        fault.detail = "form unavailable (%d)" % status
        fault.end = time.monotonic()
        return fault
    audio = b"ID3" + os.urandom(3 * 1024 * 1024)
    tag = "soak-%05d-a" % (90000 + next(_cuts))
    body = form_body(token.group(1).decode(), "[%s] %s" % (tag, STATEMENT), None)
    body = body.replace(b'filename=""', b'filename="cut.mp3"').replace(
        b"application/octet-stream\r\n\r\n", b"audio/mpeg\r\n\r\n" + audio
    )
    source = next_source()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    conn.putrequest("POST", FORM)
    conn.putheader("Content-Type", "multipart/form-data; boundary=" + BOUNDARY)
    conn.putheader("Content-Length", str(len(body)))
    conn.putheader("Cookie", "; ".join(c.split(";", 1)[0] for c in cookies))
    conn.endheaders()
    client = conn.sock.getsockname()
    sent, victim = 0, None
    try:
        while sent < len(body):
            conn.send(body[sent : sent + 64 * 1024])
            sent += 64 * 1024
            time.sleep(0.04)
            if sent >= len(body) // 2 and victim is None:
                victim = _connection_owner(port, client, stack.intake.workers())
                if victim is not None:
                    os.kill(victim, signal.SIGKILL)
                    fault.detail = "worker %d at %d of %d bytes" % (victim, sent, len(body))
        response = conn.getresponse()
        fault.detail += "; the upload was answered %d (the kill missed)" % response.status
    except (OSError, http.client.HTTPException) as exc:
        fault.detail += "; the witness's connection was cut (%s)" % type(exc).__name__
    finally:
        conn.close()
    _await_intake(stack)
    fault.end = time.monotonic()
    return fault


def kill_busy_worker(stack: Stack) -> Fault:
    fault = Fault("busy worker killed", time.monotonic())
    workers = stack.intake.workers()
    victim = random.choice(workers)
    os.kill(victim, signal.SIGKILL)
    fault.detail = "worker %d of %d" % (victim, len(workers))
    _await_intake(stack)
    fault.end = time.monotonic()
    return fault


def restart_postgres(stack: Stack) -> Fault:
    fault = Fault("PostgreSQL restarted", time.monotonic())
    stack.postgres.restart()
    _await_intake(stack)
    fault.end = time.monotonic()
    fault.detail = "down and back in %.1f s" % (fault.end - fault.start)
    return fault


def restart_redis(stack: Stack) -> Fault:
    fault = Fault("Redis restarted", time.monotonic())
    stack.redis.stop()
    time.sleep(1.0)  # long enough for requests to meet it down
    stack.redis.start()
    _await_intake(stack)
    fault.end = time.monotonic()
    fault.detail = "down %.1f s; rate-limit counters and reviewer sessions gone" % (
        fault.end - fault.start
    )
    return fault


def _await_intake(stack: Stack, timeout: float = 120) -> None:
    """Until the form answers 200 again (it reads the database)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _page, _ = _exchange(stack.intake.port, "GET", FORM)
            if status == 200 and len(stack.intake.workers()) > 0:
                return
        time.sleep(0.2)
    raise RuntimeError("the intake did not come back within %ss" % timeout)


FAULTS = (kill_mid_upload, kill_busy_worker, restart_postgres, restart_redis)


def inject(
    stack: Stack, rounds: int, progress, total: int, stop: threading.Event, faults: list[Fault]
) -> None:
    """Spread ``rounds`` x the four faults between 10% and 85% of the submissions."""
    plan = [f for _ in range(rounds) for f in FAULTS]
    for index, fault in enumerate(plan):
        target = total * (0.10 + 0.75 * index / max(len(plan), 1))
        while progress() < target and not stop.is_set():
            time.sleep(0.1)
        if stop.is_set():
            return
        faults.append(fault(stack))


# --- the run -------------------------------------------------------------------------------


@dataclass
class Result:
    submissions: int
    witnesses: int
    workers: int
    photos: int = 0
    seconds: float = 0.0
    acknowledged: int = 0
    found: int = 0
    extra: int = 0
    partial: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    outside: Counter = field(default_factory=Counter)  # 5xx / cut outside fault windows
    untranslated: int = 0
    faults: list[Fault] = field(default_factory=list)
    browsing: Browsing = field(default_factory=Browsing)
    review_outside: Counter = field(default_factory=Counter)
    check_output: str = ""
    check_ok: bool = False
    sample_opened: int = 0
    sample: int = 0

    @property
    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(
                "%d acknowledged submissions not found: %s"
                % (len(self.lost), ", ".join(self.lost[:5]))
            )
        if self.acknowledged != self.submissions:
            out.append(
                "%d of %d submissions never acknowledged"
                % (self.submissions - self.acknowledged, self.submissions)
            )
        if self.partial:
            out.append("partial testimony: %s" % "; ".join(self.partial[:5]))
        if (
            self.statuses[500]
            or self.browsing.pages.get(("inbox", 500))
            or self.browsing.pages.get(("testimony", 500))
        ):
            out.append("500 answers seen")
        if sum(self.outside.values()) or sum(self.review_outside.values()):
            out.append(
                "5xx or cut connections outside fault windows: witnesses %s, "
                "reviewers %s" % (dict(self.outside), dict(self.review_outside))
            )
        if self.untranslated:
            out.append("%d 503 pages without the translated try-again text" % self.untranslated)
        if not self.check_ok:
            out.append("testimony check failed")
        if self.sample_opened != self.sample:
            out.append(
                "%d of %d sampled receipts did not open on the witness face"
                % (self.sample - self.sample_opened, self.sample)
            )
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def _in_fault(start: float, end: float, faults: list[Fault]) -> bool:
    """Whether a request in flight from ``start`` to ``end`` met a fault (or its
    after-effects, up to GRACE seconds after the service answered again)."""
    return any(start <= (f.end or time.monotonic()) + GRACE and f.start <= end for f in faults)


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(
    submissions: int = 2000,
    witnesses: int = 32,
    reviewers: int = 2,
    workers: int = 4,
    faults: int = 2,
    photo_every: int = 4,
    fast_kdf: bool = False,
    work: Path | None = None,
    seed: int = 7,
    out=print,
) -> Result:  # type: ignore[no-untyped-def]
    owned = work is None
    work = Path(tempfile.mkdtemp(prefix="testimony-soak-")) if work is None else work
    result = Result(submissions, witnesses, workers)
    photos = make_photos(8, seed)
    items = [
        Submission(n, (n // photo_every) % len(photos) if n % photo_every == 0 else None)
        for n in range(submissions)
    ]
    result.photos = sum(1 for i in items if i.photo is not None)
    out(
        "soak: starting PostgreSQL, Redis and %d+%d gunicorn workers in %s"
        % (workers, workers, work)
    )
    postgres, redis = PostgresCluster(work / "postgres"), RedisServer(work / "redis")
    try:
        postgres.start()
        redis.start()
        stack = start_stack(work, postgres, redis, workers, reviewers, fast_kdf)
    except BaseException:
        redis.stop()
        postgres.remove()
        raise
    try:
        queue, lock, stop = list(reversed(items)), threading.Lock(), threading.Event()
        review_lock = threading.Lock()
        browsers = [
            threading.Thread(
                target=ReviewerClient(stack.review.port, p).browse,
                args=(stop, result.browsing, review_lock),
                daemon=True,
            )
            for p in stack.reviewers
        ]
        for thread in browsers:
            thread.start()
        started = time.monotonic()
        crowd = [
            threading.Thread(
                target=witness, args=(stack.intake.port, queue, lock, photos, stop), daemon=True
            )
            for _ in range(witnesses)
        ]
        for thread in crowd:
            thread.start()
        injector = threading.Thread(
            target=inject,
            args=(
                stack,
                faults,
                lambda: sum(1 for i in items if i.code),
                submissions,
                stop,
                result.faults,
            ),
            daemon=True,
        )
        injector.start()
        for thread in crowd:
            thread.join()
        result.seconds = time.monotonic() - started
        injector.join(timeout=180)
        stop.set()
        for thread in browsers:
            thread.join(timeout=60)
        _tally(result, items)
        result.sample = min(25, result.acknowledged)
        result.sample_opened = _open_on_the_witness_face(
            stack, [i.code for i in items if i.code][: result.sample]
        )
    finally:
        stack.intake.stop()
        stack.review.stop()
    try:
        _verify(
            stack, items, result, {n: hashlib.sha256(p).hexdigest() for n, p in enumerate(photos)}
        )
    finally:
        stack.redis.stop()
        stack.postgres.remove()
        if owned:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _tally(result: Result, items: list[Submission]) -> None:
    for item in items:
        if item.code:
            result.acknowledged += 1
            result.latencies.append(item.attempts[-1].seconds)
        for attempt in item.attempts:
            result.statuses[attempt.status] += 1
            if attempt.status == 503 and not attempt.translated:
                result.untranslated += 1
            if (attempt.status >= 500 or attempt.status == 0) and not _in_fault(
                attempt.at, attempt.end, result.faults
            ):
                result.outside[attempt.status] += 1
    for start, end, status in result.browsing.events:
        if not _in_fault(start, end, result.faults):
            result.review_outside[status] += 1


def _open_on_the_witness_face(stack: Stack, codes: list[str | None]) -> int:
    """Receipts opened as a witness would, through the intake (its lookup budget is 600
    an hour, so a sample)."""
    import urllib.parse

    opened = 0
    for code in codes:
        status, page, cookies = _exchange(stack.intake.port, "GET", "/ru/receipt/")
        token = _TOKEN.search(page)
        if status != 200 or not token:
            continue
        body = urllib.parse.urlencode(
            {"csrf_token": token.group(1).decode(), "receipt": code or ""}
        ).encode()
        status, page, _ = _exchange(
            stack.intake.port,
            "POST",
            "/ru/receipt/",
            body,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": "; ".join(c.split(";", 1)[0] for c in cookies),
            },
        )
        opened += status == 200 and b'name="receipt"' in page
    return opened


def _lookup_hash(job: tuple[object, object, str]) -> str:
    from store import receipts

    settings, kdf, code = job
    return receipts.ReceiptKeys(settings, kdf, receipts.normalize(code) or "").lookup_hash  # type: ignore[arg-type]


def _verify(
    stack: Stack, items: list[Submission], result: Result, photo_sha: dict[int, str]
) -> None:
    """Every acknowledged receipt leads to its whole testimony; nothing is partial;
    ``testimony check`` passes with the recovery key."""
    from sqlalchemy import select

    import crypto
    from store import settings as settings_module
    from store.blobs import read_item, unpad_document
    from store.db import Database
    from store.instance import receipt_kdf
    from store.models import Attachment, Statement, Testimony, Witness

    settings = settings_module.load(stack.owner_env)
    recovery = crypto.parse_identities_file(stack.recovery_file.read_text())
    db = Database(settings)
    try:
        with db.sessions() as session:
            kdf = receipt_kdf(session)
            acknowledged = [i for i in items if i.code]
            context = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(
                os.cpu_count() or 1, mp_context=context
            ) as pool:
                hashes = list(
                    pool.map(
                        _lookup_hash, [(settings, kdf, i.code) for i in acknowledged], chunksize=8
                    )
                )
            by_hash = dict(
                session.execute(
                    select(Witness.receipt_hash, Testimony.id).join(
                        Testimony, Testimony.witness_id == Witness.id
                    )
                ).all()
            )
            contents: dict[int, tuple[str | None, list[str]]] = {}
            for (testimony_id,) in session.execute(select(Testimony.id)):
                statements = list(
                    session.scalars(
                        select(Statement.blob_id).where(Statement.testimony_id == testimony_id)
                    )
                )
                originals = list(
                    session.scalars(
                        select(Attachment.original_blob_id).where(
                            Attachment.testimony_id == testimony_id
                        )
                    )
                )
                tag = None
                if len(statements) == 1:
                    text = unpad_document(read_item(session, statements[0], recovery))["text"]
                    found = _TAG.search(str(text))
                    tag = found.group(1) if found else None
                shas = [
                    hashlib.sha256(read_item(session, b, recovery)).hexdigest() for b in originals
                ]
                contents[testimony_id] = (tag, shas)
                files = 0 if tag is None or tag.endswith("-t") else 1
                if tag is None or len(shas) != files:
                    result.partial.append(
                        "testimony %d: %d statements, %d files"
                        % (testimony_id, len(statements), len(shas))
                    )
    finally:
        db.dispose()
    matched = set()
    for item, lookup in zip(acknowledged, hashes, strict=True):
        testimony_id = by_hash.get(lookup)
        tag, shas = contents.get(testimony_id, (None, [])) if testimony_id else (None, [])
        expected = [photo_sha[item.photo]] if item.photo is not None else []
        if tag == item.tag and shas == expected:
            result.found += 1
            matched.add(testimony_id)
        else:
            result.lost.append(item.tag)
    result.extra = len(contents) - len(matched)
    done = subprocess.run(
        [sys.executable, "-m", "review.cli", "check", "--identity", str(stack.recovery_file)],
        cwd=ROOT,
        env=stack.owner_env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    result.check_ok = done.returncode == 0
    result.check_output = (done.stdout + done.stderr).strip()


def report(result: Result, out=print) -> None:  # type: ignore[no-untyped-def]
    kinds = Counter(f.kind for f in result.faults)
    pages = result.browsing.pages
    out("")
    out(
        "Soak: %d submissions (%d with a photo) by %d witnesses; %d workers per face; "
        "own PostgreSQL + Redis on loopback"
        % (result.submissions, result.photos, result.witnesses, result.workers)
    )
    out(
        "  load: %d acknowledged in %.1f s = %.1f submissions/s; POST latency p50 %.2f s, "
        "p95 %.2f s, max %.2f s"
        % (
            result.acknowledged,
            result.seconds,
            result.acknowledged / max(result.seconds, 1e-9),
            _percentile(result.latencies, 50),
            _percentile(result.latencies, 95),
            max(result.latencies or [0]),
        )
    )
    out(
        "  faults injected: %d (%s)"
        % (len(result.faults), ", ".join("%d %s" % (n, k) for k, n in kinds.items()))
    )
    for fault in result.faults:
        out("    - %s: %s" % (fault.kind, fault.detail))
    out(
        "  witnesses saw: %s; 503 pages without the translated text: %d; outside faults: %s"
        % (
            ", ".join(
                "%s %d" % ("cut" if s == 0 else s, n) for s, n in sorted(result.statuses.items())
            ),
            result.untranslated,
            dict(result.outside) or "nothing but 200s",
        )
    )
    out(
        "  reviewers: %d logins; pages %s; outside faults: %s"
        % (
            result.browsing.logins,
            ", ".join(
                "%s %s %d" % (k, "cut" if s == 0 else s, n) for (k, s), n in sorted(pages.items())
            ),
            dict(result.review_outside) or "nothing but 200s and logins",
        )
    )
    out(
        "  after: acknowledged %d, found whole %d, lost %d; committed but not acknowledged "
        "(a worker killed after the commit) %d; partial testimony %d; receipts opened on the "
        "witness face %d of %d"
        % (
            result.acknowledged,
            result.found,
            len(result.lost),
            result.extra,
            len(result.partial),
            result.sample_opened,
            result.sample,
        )
    )
    out(
        "  testimony check: %s" % result.check_output.splitlines()[-1]
        if result.check_output
        else "  testimony check: no output"
    )
    out("RESULT: %s" % ("PASS" if result.ok else "FAIL: " + "; ".join(result.problems)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--witnesses", type=int, default=32)
    parser.add_argument("--reviewers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--faults", type=int, default=2, help="rounds of the four faults")
    parser.add_argument("--photo-every", type=int, default=4)
    parser.add_argument(
        "--fast-kdf",
        action="store_true",
        help="test-strength Argon2id and scrypt (the default is production)",
    )
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs)")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else None
    if work:
        work.mkdir(parents=True, exist_ok=True)
    result = run(
        args.submissions,
        args.witnesses,
        args.reviewers,
        args.workers,
        args.faults,
        args.photo_every,
        args.fast_kdf,
        work,
    )
    report(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
