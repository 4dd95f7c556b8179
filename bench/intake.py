"""Intake throughput and upload memory: the witness face under load against a bare app.

What it measures, in one run, each server fresh (a new instance made with
``testimony init``, or a new SQLite file) and served by gunicorn with ``--workers 2``
(sync workers) on a free 127.0.0.1 port:

* intake, Argon2 production: ``wsgi:intake_app`` with the default receipt Argon2id
  parameters (64 MiB, 3 passes): the real cost of every receipt;
* intake, Argon2 fast: the same with 1 MiB, 1 pass (the tests' parameters), to show what
  the rest of the intake costs;
* bare: ``bench/bare_app.py``, a Flask app that receives the same multipart body and
  stores it in plaintext SQLite with the same durability (WAL, synchronous=FULL, one
  transaction per submission) and nothing else.

Load: ``--clients`` threads (default 8). Each fetches the form page once with its own
cookie jar to get a CSRF token, as a browser would, then all start together and submit
until the queue is empty. First ``--text`` text-only testimonies (default 100: a
statement of about 2,000 Cyrillic characters, the required choices, an empty file part
as a browser sends when no file is chosen), then ``--photos`` testimonies with one 5 MiB
JPEG (default 15; 12 megapixels, EXIF capture time and GPS). The three servers run side
by side and are loaded in turn, ``--rounds`` times (default 3): other work on the machine
then falls on all of them alike, and each figure is the server's best round.

Each submission comes from its own loopback source address (127.1.0.0/16 and up): the
intake's per-address rate limit (30 an hour) is meant for one witness, not for a load
test, and the global budget is raised with ``TESTIMONY_SUBMISSIONS_PER_HOUR``. Latency
is client-side: connect, send, read the whole page. Submissions/s is acknowledged
submissions (status 200 with a receipt code) over the wall time of the round.

Receipts that open: after the rounds, with the servers stopped, the recovery identity (the
file ``testimony init`` writes) unseals every sealed blob in the database, and every
acknowledged receipt code is turned into its lookup hash (Argon2id with the instance salt,
as the intake does) and must lead to a testimony whose unsealed statement is the one that
client sent and, for photos, whose sealed original has the uploaded file's SHA-256. For
the bare app the codes are looked up in its table. The count must equal the submissions.

Memory: a fresh instance served by gunicorn with one worker, TESTIMONY_MAX_FILE_MIB and
TESTIMONY_MAX_SUBMISSION_MIB at 250, production Argon2. After a warm-up (one text-only
submission, one 1 MiB video), the worker's VmHWM (peak RSS, /proc/PID/status) is read,
one 200 MiB video-like file (an MP4 ``ftyp`` box, then pseudo-random bytes) is uploaded,
streamed from a generator with a Content-Length, and VmHWM is read again. The stored
original is then unsealed (streamed) and its SHA-256 compared with what was sent.

Targets:

* text-only, Argon2 production: at least 50 submissions/s;
* text-only, Argon2 production: within 2x the bare app's submissions/s;
* every acknowledged receipt opens;
* a 200 MiB upload raises the worker's peak RSS by at most 64 MiB.

This is not a test: it prints the table, the ratios and which targets are met, and exits
0 whatever the figures are (1 only if the benchmark itself cannot run).

``--profile`` instead runs submissions through the intake app in this process (Flask
test client, one at a time, both Argon2 settings, text-only and photo) under cProfile and
prints where the milliseconds of one submission go.

    .venv/bin/python bench/intake.py [--clients 8] [--rounds 3] [--text 100] [--photos 15]
                                     [--upload-mib 200] [--tmpdir DIR] [--profile]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import cProfile
import hashlib
import http.client
import io
import itertools
import multiprocessing
import os
import pstats
import queue
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path, and this file would shadow
# the ``intake`` package: the project root takes its place.
sys.path[:] = [str(ROOT)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")
]

MiB = 1024 * 1024
TEXT_RATE_MIN = 50.0
BARE_RATIO_MAX = 2.0
RSS_GROWTH_MAX_MIB = 64
PHOTO_MIB = 5
START_SECONDS = 60
MEMORY_SUBMISSIONS = 3  # the memory run: two warm-ups and the large upload

FAST_ARGON2 = {
    "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_ARGON2_TIME_COST": "1",
    "TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_RECEIPT_ARGON2_TIME_COST": "1",
}
BOUNDARY = "----TestimonyBench7f3a9c1e"
CONTENT_TYPE = "multipart/form-data; boundary=" + BOUNDARY
FORM_PATH = "/ru/testimony/"
_TOKEN = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
_CODE = re.compile(rb'<p class="code"[^>]*>\s*([0-9 ]{20,30}?)\s*</p>')

STATEMENT = (
    "Ночью 7 февраля 2020 года в селе Масанчи загорелись дома на нашей улице. Я видел, как "
    "группа людей с палками и камнями шла со стороны трассы. Полицейские стояли у моста и "
    "не вмешивались, когда соседи просили о помощи. Утром 8 февраля соседей увезли в "
    "отделение в Кордае; их родственникам ничего не сообщили. "
)


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTIMONY_", "BARE_"))}
    env.update(extra)
    return env


def init_instance(path: Path, **extra: str) -> dict[str, str]:
    """A fresh instance made by ``testimony init``; returns the server environment."""
    env = clean_env(
        TESTIMONY_INSTANCE_PATH=str(path), TESTIMONY_SUBMISSIONS_PER_HOUR="1000000", **extra
    )
    command = Path(sys.executable).parent / "testimony"
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "review.cli"]
    result = subprocess.run([*argv, "init"], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("testimony init failed: %s" % result.stderr.strip())
    return env


class Server:
    """gunicorn serving ``app`` on a free loopback port, stopped on exit."""

    def __init__(
        self, app: str, env: dict[str, str], workers: int, log: Path, chdir: Path = ROOT
    ) -> None:
        self.app, self.env, self.workers, self.log, self.chdir = app, env, workers, log, chdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.port = free_port()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    "127.0.0.1:%d" % self.port,
                    "--workers",
                    str(self.workers),
                    "--timeout",
                    "3600",
                    "--graceful-timeout",
                    "10",
                    self.app,
                ],
                cwd=self.chdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit("%s did not start: %s" % (self.app, self.log.read_text()[-2000:]))
            time.sleep(0.1)
        while len(self.worker_pids()) < self.workers:
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/ru/")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                pids.append(int(entry))
        return sorted(pids)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def status_kib(pid: int, field: str) -> int:
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError("no %s for pid %d" % (field, pid))


# --- clients -------------------------------------------------------------------------------

_sources = itertools.count()


def next_source() -> str:
    """A fresh loopback source address for each connection: 127.1.0.1, 127.1.0.2, ..."""
    n = next(_sources)
    return "127.%d.%d.%d" % (1 + n // (254 * 254) % 250, n // 254 % 254, n % 254 + 1)


def connect(port: int, timeout: float = 3600) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(next_source(), 0)
    )


def fetch_token(port: int) -> tuple[str, str]:
    """GET the form as a browser would: (Cookie header value, CSRF token)."""
    conn = connect(port)
    conn.request("GET", FORM_PATH)
    response = conn.getresponse()
    page = response.read().decode()
    conn.close()
    if response.status != 200:
        sys.exit("GET %s: status %d" % (FORM_PATH, response.status))
    cookies = [c.split(";", 1)[0] for c in response.headers.get_all("Set-Cookie") or []]
    match = _TOKEN.search(page)
    if not match:
        sys.exit("no csrf_token in the form page")
    return "; ".join(cookies), match.group(1)


def _part(name: str, value: str) -> bytes:
    return (
        '--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (BOUNDARY, name, value)
    ).encode()


def _file_head(filename: str, content_type: str) -> bytes:
    return (
        '--%s\r\nContent-Disposition: form-data; name="files"; filename="%s"\r\n'
        "Content-Type: %s\r\n\r\n" % (BOUNDARY, filename, content_type)
    ).encode()


def form_body(token: str, statement: str, file: tuple[str, str] | None) -> tuple[bytes, bytes]:
    """The multipart body around one file's content, in the browser's field order:
    (everything before the content, everything after)."""
    head = b"".join(
        [
            _part("csrf_token", token),
            _part("statement", statement),
            _part("when_date", "2020-02-07"),
            _part("when_approx", ""),
            _part("place", "masanchi"),
            _part("place_other", ""),
            _part("relation", "saw"),
            _file_head(*(file or ("", "application/octet-stream"))),
        ]
    )
    tail = b"".join(
        [
            b"\r\n",
            _part("contact", ""),
            _part("consent", "counts"),
            _part("website", ""),
            ("--%s--\r\n" % BOUNDARY).encode(),
        ]
    )
    return head, tail


def statement_for(tag: str) -> str:
    text = "[%s] " % tag + STATEMENT * 5
    return text[:2000]


@dataclass
class Outcome:
    tag: str
    photo: bool
    status: int
    seconds: float
    code: str | None


def submit(port: int, cookie: str, body: bytes) -> tuple[int, float, str | None]:
    start = time.perf_counter()
    conn = connect(port)
    conn.request(
        "POST", FORM_PATH, body=body, headers={"Content-Type": CONTENT_TYPE, "Cookie": cookie}
    )
    response = conn.getresponse()
    page = response.read()
    conn.close()
    seconds = time.perf_counter() - start
    match = _CODE.search(page) if response.status == 200 else None
    return response.status, seconds, match.group(1).decode() if match else None


def run_load(
    port: int, tags: list[str], photo: bytes | None, clients: int
) -> tuple[list[Outcome], float]:
    """Submit one testimony per tag from ``clients`` threads; (outcomes, wall seconds)."""
    jobs: queue.SimpleQueue[str] = queue.SimpleQueue()
    for tag in tags:
        jobs.put(tag)
    outcomes: list[Outcome] = []
    errors: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client() -> None:
        try:
            cookie, token = fetch_token(port)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
            ready.abort()
            return
        ready.wait()
        while True:
            try:
                tag = jobs.get_nowait()
            except queue.Empty:
                return
            head, tail = form_body(
                token, statement_for(tag), ("photo-%s.jpg" % tag, "image/jpeg") if photo else None
            )
            try:
                status, seconds, code = submit(port, cookie, head + (photo or b"") + tail)
            except OSError as exc:
                errors.append("%s: %r" % (tag, exc))
                status, seconds, code = 0, 0.0, None
            with lock:
                outcomes.append(Outcome(tag, photo is not None, status, seconds, code))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        sys.exit("a client could not fetch the form: %s" % errors)
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        print("  connection errors: %d, first: %s" % (len(errors), errors[0]))
    return outcomes, wall


# --- inputs --------------------------------------------------------------------------------


def make_photo(target: int) -> bytes:
    """A 12-megapixel JPEG of at least ``target`` bytes, with EXIF capture time and GPS."""
    from PIL import Image

    width, height = 4000, 3000
    rng = random.Random(20200207)
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    exif[0x0110] = "Phone 12"
    exif.get_ifd(0x8769)[0x9003] = "2020:02:07 23:15:00"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (43.0, 12.0, 30.0), 3: "E", 4: (75.0, 6.0, 0.0)})
    amount = 0.18
    while True:
        out = io.BytesIO()
        Image.blend(base, noise, amount).save(out, "JPEG", quality=90, exif=exif)
        if out.tell() >= target or amount > 0.9:
            return out.getvalue()
        amount += 0.02


MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41\x00\x00\x00\x00mdat"


def video_chunks(size: int, seed: int) -> Iterator[bytes]:
    """A video-like file of ``size`` bytes, generated 1 MiB at a time."""
    rng = random.Random(seed)
    sent = 0
    while sent < size:
        n = min(MiB, size - sent)
        block = rng.randbytes(n)
        if sent == 0:
            block = (MP4_HEAD + block[len(MP4_HEAD) :])[:n]
        sent += n
        yield block


def stream_upload(
    port: int, cookie: str, token: str, size: int, seed: int, tag: str
) -> tuple[int, float, str | None, str]:
    """POST one video of ``size`` bytes, streamed; (status, seconds, code, SHA-256)."""
    head, tail = form_body(token, statement_for(tag), ("video-%s.mp4" % tag, "video/mp4"))
    digest = hashlib.sha256()
    start = time.perf_counter()
    conn = connect(port)
    conn.putrequest("POST", FORM_PATH)
    conn.putheader("Content-Type", CONTENT_TYPE)
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.putheader("Cookie", cookie)
    conn.endheaders()
    conn.send(head)
    for block in video_chunks(size, seed):
        digest.update(block)
        conn.send(block)
    conn.send(tail)
    response = conn.getresponse()
    page = response.read()
    conn.close()
    seconds = time.perf_counter() - start
    match = _CODE.search(page) if response.status == 200 else None
    return (
        response.status,
        seconds,
        match.group(1).decode() if match else None,
        digest.hexdigest(),
    )


# --- checking what was stored --------------------------------------------------------------


def _lookup_hash(job: tuple[object, object, str]) -> str:
    from store import receipts

    settings, kdf, code = job
    return receipts.ReceiptKeys(settings, kdf, receipts.normalize(code) or "").lookup_hash  # type: ignore[arg-type]


def _sha256_of(stream: io.BufferedIOBase) -> str:
    digest = hashlib.sha256()
    while block := stream.read(MiB):
        digest.update(block)
    return digest.hexdigest()


@dataclass
class Check:
    acknowledged: int
    opened: set[str]  # tags of the acknowledged submissions whose receipt opened
    stored: int
    blobs: int = 0
    blobs_opened: int = 0


def check_intake(
    env: dict[str, str],
    outcomes: list[Outcome],
    photo_sha: str | None,
    videos: dict[str, str] | None = None,
) -> Check:
    """Open every sealed blob and every acknowledged receipt with the recovery identity."""
    from sqlalchemy import func, select

    import crypto
    from store import settings as settings_module
    from store.blobs import open_item, unpad_document
    from store.db import Database
    from store.instance import receipt_kdf
    from store.models import SealedBlob, Testimony, Witness

    settings = settings_module.load(env)
    identities = crypto.parse_identities_file(
        (settings.instance_path / "recovery-key.txt").read_text()
    )
    acknowledged = [o for o in outcomes if o.code]
    db = Database(settings)
    try:
        with db.sessions() as session:
            kdf = receipt_kdf(session)
            blobs = opened_blobs = 0
            for blob in session.scalars(select(SealedBlob).execution_options(yield_per=64)):
                blobs += 1
                try:
                    _sha256_of(open_item(session, blob.id, identities))
                    opened_blobs += 1
                except Exception as exc:  # noqa: BLE001 - counted, first one shown
                    if blobs - opened_blobs == 1:
                        print("  blob %d does not open: %r" % (blob.id, exc))
            stored = session.scalar(select(func.count()).select_from(Testimony)) or 0
            context = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(
                os.cpu_count() or 1, mp_context=context
            ) as pool:
                hashes = list(
                    pool.map(
                        _lookup_hash, [(settings, kdf, o.code) for o in acknowledged], chunksize=4
                    )
                )
            by_hash = dict(
                session.execute(
                    select(Witness.receipt_hash, Testimony).where(
                        Testimony.witness_id == Witness.id
                    )
                ).all()
            )
            opened = set()
            for outcome, lookup in zip(acknowledged, hashes, strict=True):
                testimony = by_hash.get(lookup)
                if testimony is None or not testimony.statements:
                    continue
                first = session.get(SealedBlob, testimony.statements[0].blob_id)
                text = unpad_document(open_item(session, first.id, identities).read())["text"]
                if text != statement_for(outcome.tag):
                    continue
                expected = (videos or {}).get(outcome.tag) or (photo_sha if outcome.photo else None)
                if expected:
                    if len(testimony.attachments) != 1:
                        continue
                    original = session.get(SealedBlob, testimony.attachments[0].original_blob_id)
                    if _sha256_of(open_item(session, original.id, identities)) != expected:
                        continue
                elif testimony.attachments:
                    continue
                opened.add(outcome.tag)
    finally:
        db.dispose()
    return Check(len(acknowledged), opened, stored, blobs, opened_blobs)


def check_bare(path: Path, outcomes: list[Outcome], photo_sha: str) -> Check:
    acknowledged = [o for o in outcomes if o.code]
    db = sqlite3.connect(path)
    try:
        rows = {
            code: (sid, statement)
            for sid, code, statement in db.execute("SELECT id, code, statement FROM submission")
        }
        uploads: dict[int, list[bytes]] = {}
        for sid, data in db.execute("SELECT submission_id, data FROM upload"):
            uploads.setdefault(sid, []).append(data)
    finally:
        db.close()
    opened = set()
    for outcome in acknowledged:
        row = rows.get(outcome.code or "")
        if row is None or row[1] != statement_for(outcome.tag):
            continue
        files = uploads.get(row[0], [])
        if outcome.photo and [hashlib.sha256(f).hexdigest() for f in files] != [photo_sha]:
            continue
        if not outcome.photo and files:
            continue
        opened.add(outcome.tag)
    return Check(len(acknowledged), opened, len(rows))


# --- figures -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # nearest rank
    return ordered[int(rank) - 1]


@dataclass
class Round:
    outcomes: list[Outcome]
    wall: float

    @property
    def rate(self) -> float:
        acknowledged = sum(1 for o in self.outcomes if o.code)
        return acknowledged / self.wall if self.wall else 0.0


@dataclass
class Phase:
    """One server under one load, over all rounds; figures are the best round's."""

    server: str
    load: str
    rounds: list[Round]
    check: Check | None = None

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for r in self.rounds for o in r.outcomes]

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.code]

    @property
    def best(self) -> Round:
        return max(self.rounds, key=lambda r: r.rate)

    @property
    def rate(self) -> float:
        return self.best.rate

    def ms(self, p: float) -> float:
        return 1000 * percentile([o.seconds for o in self.best.outcomes if o.code], p)

    @property
    def refused(self) -> str:
        statuses: dict[int, int] = {}
        for o in self.outcomes:
            if not o.code:
                statuses[o.status] = statuses.get(o.status, 0) + 1
        return ", ".join("%d x %s" % (n, s or "error") for s, n in sorted(statuses.items()))

    @property
    def opened(self) -> int:
        """Submissions of this phase whose receipt opened (acknowledged and checked)."""
        tags = self.check.opened if self.check else set()
        return sum(1 for o in self.outcomes if o.tag in tags)


@dataclass
class Target:
    """A server under test: how to start it and where it keeps what it received."""

    name: str
    app: str
    env: dict[str, str]
    chdir: Path = ROOT
    bare_db: Path | None = None


def run_loads(work: Path, args: argparse.Namespace, photo: bytes, photo_sha: str) -> list[Phase]:
    """All three servers up at once; rounds interleave them, so that a neighbour's load on
    the machine falls on all of them alike. Each server's figures are its best round."""
    bare_db = work / "bare.sqlite3"
    targets = [
        Target("intake argon2 production", "wsgi:intake_app", init_instance(work / "production")),
        Target(
            "intake argon2 fast", "wsgi:intake_app", init_instance(work / "fast", **FAST_ARGON2)
        ),
        Target("bare", "bare_app:app", clean_env(BARE_DB=str(bare_db)), ROOT / "bench", bare_db),
    ]
    loads = [("text", None, args.text), ("photo", photo, args.photos)]
    phases = {(t.name, load): Phase(t.name, load, []) for t in targets for load, _, n in loads if n}
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(Server(t.app, t.env, 2, work / "gunicorn.log", chdir=t.chdir))
            for t in targets
        ]
        for number in range(1, args.rounds + 1):
            for target, server in zip(targets, servers, strict=True):
                for load, body, count in loads:
                    if not count:
                        continue
                    print(
                        "  round %d/%d, %s: %d %s submissions ..."
                        % (number, args.rounds, target.name, count, load),
                        flush=True,
                    )
                    tags = ["%s-r%d-%s%d" % (target.name, number, load, i) for i in range(count)]
                    outcomes, wall = run_load(server.port, tags, body, args.clients)
                    phases[(target.name, load)].rounds.append(Round(outcomes, wall))
    for target in targets:
        mine = [p for p in phases.values() if p.server == target.name]
        outcomes = [o for p in mine for o in p.outcomes]
        print("  %s: opening what was stored ..." % target.name, flush=True)
        if target.bare_db:
            check = check_bare(target.bare_db, outcomes, photo_sha)
        else:
            check = check_intake(target.env, outcomes, photo_sha)
        for phase in mine:
            phase.check = check
    return list(phases.values())


@dataclass
class Memory:
    fresh_mib: float
    before_mib: float
    after_mib: float
    rss_after_mib: float
    upload_mib: int
    seconds: float
    status: int
    check: Check

    @property
    def growth(self) -> float:
        return self.after_mib - self.before_mib


def run_memory(work: Path, upload_mib: int) -> Memory:
    env = init_instance(
        work / "memory", TESTIMONY_MAX_FILE_MIB="250", TESTIMONY_MAX_SUBMISSION_MIB="250"
    )
    size = upload_mib * MiB
    outcomes = []
    videos = {}
    with Server("wsgi:intake_app", env, 1, work / "gunicorn.log") as server:
        (pid,) = server.worker_pids()
        fresh = status_kib(pid, "VmHWM")
        cookie, token = fetch_token(server.port)
        head, tail = form_body(token, statement_for("memory-warm-text"), None)
        status, seconds, code = submit(server.port, cookie, head + tail)
        outcomes.append(Outcome("memory-warm-text", False, status, seconds, code))
        status, seconds, code, sha = stream_upload(
            server.port, cookie, token, MiB, 1, "memory-warm-video"
        )
        outcomes.append(Outcome("memory-warm-video", False, status, seconds, code))
        videos["memory-warm-video"] = sha
        before = status_kib(pid, "VmHWM")
        print("  memory: one %d MiB upload to one worker ..." % upload_mib, flush=True)
        status, seconds, code, sha = stream_upload(
            server.port, cookie, token, size, 2, "memory-video"
        )
        after = status_kib(pid, "VmHWM")
        rss = status_kib(pid, "VmRSS")
        outcomes.append(Outcome("memory-video", False, status, seconds, code))
        videos["memory-video"] = sha
        if status != 200:
            print("  the %d MiB upload got status %d" % (upload_mib, status))
    check = check_intake(env, outcomes, None, videos)
    return Memory(
        fresh / 1024, before / 1024, after / 1024, rss / 1024, upload_mib, seconds, status, check
    )


def report(
    phases: list[Phase], memory: Memory | None, args: argparse.Namespace, photo: bytes
) -> None:
    print()
    print(
        "gunicorn --workers 2 (sync) on 127.0.0.1, %d clients, %d cores; %d rounds, each: "
        "%d text-only submissions, %d with one %.1f MiB JPEG; subs/s and latency: best round"
        % (args.clients, os.cpu_count() or 0, args.rounds, args.text, args.photos, len(photo) / MiB)
    )
    print()
    print(
        "%-26s %-6s %6s %9s %9s %9s %14s  %-20s %s"
        % (
            "server",
            "load",
            "subs",
            "subs/s",
            "p50 ms",
            "p95 ms",
            "receipts open",
            "subs/s by round",
            "refused",
        )
    )
    for p in phases:
        print(
            "%-26s %-6s %6d %9.1f %9.0f %9.0f %14s  %-20s %s"
            % (
                p.server,
                p.load,
                len(p.ok),
                p.rate,
                p.ms(50),
                p.ms(95),
                "%d/%d" % (p.opened, len(p.outcomes)),
                " ".join("%.1f" % r.rate for r in p.rounds),
                p.refused or "-",
            )
        )
    print()
    printed = set()
    for p in phases:
        if p.check is None or p.server in printed:
            continue
        printed.add(p.server)
        if p.check.blobs:
            print(
                "%s: %d testimonies stored, %d/%d sealed blobs open with the recovery key"
                % (p.server, p.check.stored, p.check.blobs_opened, p.check.blobs)
            )
        else:
            print("%s: %d submissions stored" % (p.server, p.check.stored))

    def find(server: str, load: str) -> Phase | None:
        return next((p for p in phases if p.server == server and p.load == load), None)

    print()
    print("ratios (bare / intake submissions/s; intake / bare p50 latency):")
    for server in ("intake argon2 production", "intake argon2 fast"):
        for load in ("text", "photo"):
            mine, bare = find(server, load), find("bare", load)
            if mine and bare and mine.rate:
                print(
                    "  %-26s %-6s %6.2fx slower   p50 %6.2fx"
                    % (server, load, bare.rate / mine.rate, mine.ms(50) / bare.ms(50))
                )
    if memory:
        print()
        print(
            "memory (1 worker, production Argon2): VmHWM fresh %.1f MiB, after warm-up "
            "%.1f MiB, after one %d MiB upload %.1f MiB (VmRSS %.1f MiB): +%.1f MiB; "
            "upload took %.1f s (%.0f MiB/s), status %d, %d/%d receipts open, "
            "%d/%d sealed blobs open"
            % (
                memory.fresh_mib,
                memory.before_mib,
                memory.upload_mib,
                memory.after_mib,
                memory.rss_after_mib,
                memory.growth,
                memory.seconds,
                memory.upload_mib / memory.seconds if memory.seconds else 0,
                memory.status,
                len(memory.check.opened),
                MEMORY_SUBMISSIONS,
                memory.check.blobs_opened,
                memory.check.blobs,
            )
        )

    print()
    print("targets:")

    def target(label: str, met: bool | None, detail: str) -> None:
        state = "n/a" if met is None else "met" if met else "MISSED"
        print("  %-62s %-7s %s" % (label, state, detail))

    prod, fast, bare = (
        find("intake argon2 production", "text"),
        find("intake argon2 fast", "text"),
        find("bare", "text"),
    )
    if prod:
        target(
            "text-only >= %d/s (Argon2 production)" % TEXT_RATE_MIN,
            prod.rate >= TEXT_RATE_MIN,
            "%.1f/s" % prod.rate,
        )
    if fast:
        target(
            "text-only >= %d/s (Argon2 fast, for information)" % TEXT_RATE_MIN,
            fast.rate >= TEXT_RATE_MIN,
            "%.1f/s" % fast.rate,
        )
    if prod and bare and prod.rate:
        ratio = bare.rate / prod.rate
        target(
            "text-only within %gx of bare (Argon2 production)" % BARE_RATIO_MAX,
            ratio <= BARE_RATIO_MAX,
            "%.2fx" % ratio,
        )
    if fast and bare and fast.rate:
        ratio = bare.rate / fast.rate
        target(
            "text-only within %gx of bare (Argon2 fast, for information)" % BARE_RATIO_MAX,
            ratio <= BARE_RATIO_MAX,
            "%.2fx" % ratio,
        )
    submitted = sum(len(p.outcomes) for p in phases) + (MEMORY_SUBMISSIONS if memory else 0)
    opened = sum(p.opened for p in phases) + (len(memory.check.opened) if memory else 0)
    target(
        "every acknowledged receipt opens",
        opened == submitted and bool(submitted),
        "%d/%d submissions" % (opened, submitted),
    )
    if memory:
        target(
            "%d MiB upload raises worker peak RSS <= %d MiB"
            % (memory.upload_mib, RSS_GROWTH_MAX_MIB),
            memory.status == 200 and memory.growth <= RSS_GROWTH_MAX_MIB,
            "+%.1f MiB" % memory.growth,
        )
    print()
    print(
        "load average while running: %.2f %.2f %.2f (other processes share these cores)"
        % os.getloadavg()
    )
    print("where the time of one submission goes: bench/intake.py --profile")


# --- where the time goes ------------------------------------------------------------------

PROFILE_TOP = 22


def run_profile(work: Path, args: argparse.Namespace, photo: bytes) -> None:
    """Submissions through the intake app in this process (Flask test client, no gunicorn,
    one at a time) under cProfile: milliseconds per submission in the project's own
    functions (cumulative) and in the costliest functions of any code (own time)."""
    from intake import create_app
    from store import settings as settings_module

    for name, argon2 in (("Argon2 production", {}), ("Argon2 fast", FAST_ARGON2)):
        env = init_instance(work / ("profile " + name).replace(" ", "-"), **argon2)
        app = create_app(settings_module.load(env))
        client = app.test_client()
        page = client.get(FORM_PATH).get_data(as_text=True)
        match = _TOKEN.search(page)
        if not match:
            sys.exit("no csrf_token in the form page")
        token = match.group(1)
        text_runs = max(args.text // 3, 10) if not argon2 else max(args.text, 10)
        for load, body, count in (
            ("text", None, text_runs),
            ("photo", photo, max(args.photos // 3, 5)),
        ):

            def one(
                tag: str,
                body: bytes | None = body,
                token: str = token,
                client: FlaskClient = client,
            ) -> None:
                head, tail = form_body(
                    token,
                    statement_for(tag),
                    ("photo-%s.jpg" % tag, "image/jpeg") if body else None,
                )
                response = client.post(
                    FORM_PATH,
                    data=head + (body or b"") + tail,
                    content_type=CONTENT_TYPE,
                    environ_base={"REMOTE_ADDR": next_source()},
                )
                if response.status_code != 200:
                    sys.exit("profile: status %d" % response.status_code)

            for i in range(3):
                one("warm-%s-%d" % (load, i))
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.enable()
            for i in range(count):
                one("profile-%s-%d" % (load, i))
            profiler.disable()
            seconds = (time.perf_counter() - start) / count
            print_profile("%s, %s" % (name, load), pstats.Stats(profiler), count, seconds)
        app.extensions["testimony_db"].dispose()


def print_profile(title: str, stats: pstats.Stats, count: int, seconds: float) -> None:
    entries = stats.stats  # type: ignore[attr-defined]
    own, anywhere = [], []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in entries.items():
        path = Path(filename)
        label = "%s:%d %s" % (filename, line, function)
        if path.is_absolute() and ROOT in path.parents and ".venv" not in path.parts:
            label = "%s:%d %s" % (path.relative_to(ROOT), line, function)
            if path.parent != ROOT / "bench":
                own.append((cumtime, calls, label))
        anywhere.append((tottime, calls, label.replace(str(ROOT / ".venv") + "/", "")))
    print()
    print("%s: %d submissions, %.1f ms each under the profiler" % (title, count, 1000 * seconds))
    print("  cumulative ms/submission, project code:")
    for cumtime, calls, label in sorted(own, reverse=True)[:PROFILE_TOP]:
        print("  %9.2f  %6.1f calls  %s" % (1000 * cumtime / count, calls / count, label))
    print("  own ms/submission, any code:")
    for tottime, calls, label in sorted(anywhere, reverse=True)[: PROFILE_TOP // 2]:
        print("  %9.2f  %6.1f calls  %s" % (1000 * tottime / count, calls / count, label))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--text", type=int, default=100, help="text-only submissions per server and round"
    )
    parser.add_argument(
        "--photos", type=int, default=15, help="submissions with a photo per server and round"
    )
    parser.add_argument(
        "--upload-mib", type=int, default=200, help="size of the memory run's upload (0 skips it)"
    )
    parser.add_argument("--tmpdir", help="where instances live (default: system temp)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: profile the intake in-process and show where the time of a submission goes",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="testimony-bench-intake-", dir=args.tmpdir))
    try:
        print("making a %d MiB photo ..." % PHOTO_MIB, flush=True)
        photo = make_photo(PHOTO_MIB * MiB)
        photo_sha = hashlib.sha256(photo).hexdigest()
        if args.profile:
            run_profile(work, args, photo)
            return 0
        phases = run_loads(work, args, photo, photo_sha)
        memory = run_memory(work, args.upload_mib) if args.upload_mib else None
        report(phases, memory, args, photo)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
