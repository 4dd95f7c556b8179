"""The review desk at scale: inbox, one testimony and full-text search over 10,000.

What it builds, per database (SQLite always; PostgreSQL too when TEST_DATABASE_URL is
set, otherwise that part is reported as skipped): a fresh instance in a temporary
directory made with ``testimony init`` (migrations, recovery key), one reviewer made with
:func:`review.accounts.create_reviewer`, then ``--testimonies`` (default 10,000) invented
testimonies stored as :func:`intake.submission.receive` stores them: a witness row with
the Argon2id lookup hash and reply key of a fresh receipt code, the details, a contact for
about a third, the testimony row and its statement, each sealed with
:func:`store.blobs.seal_blob` over :func:`store.blobs.pad_document` to the instance's
active recipients (the recovery key and the reviewer; hybrid post-quantum keys unless
TESTIMONY_RECIPIENT_KEYS says otherwise), and the witness's audit event.

Statements are invented Russian, Kazakh and English text (the testimony's language),
300 to 5,000 characters; the word "мечеть" appears, in various cases, in a known few and
nowhere else. Testimonies are spread over two years with the statuses, places, relations
and assignments a working desk would have (the intake stores status "new" and no
assignee; reviewers change them later).

Sealing runs on ``--workers`` processes (default: every core): each worker seals with the
real :func:`seal_blob` into a private in-memory SQLite database holding the same recipient
rows, and hands back the header and chunk rows, which the main process stores in order,
``--batch`` testimonies per transaction (the rows are those the intake writes; only the
transaction boundaries differ). Argon2id and scrypt are cheap during setup only
(TESTIMONY_ARGON2_MEMORY_KIB=1024, TESTIMONY_ARGON2_TIME_COST=1,
TESTIMONY_SCRYPT_WORK_FACTOR=10); the review app measured runs with the default settings.

What it measures, through the real review Flask app (``review.create_app``, CSRF on),
with a test client logged in with name, password and a real TOTP code, each figure the
median wall time of the request; a first request before them is not counted (templates
compiled, caches filled), but for search its time is printed too, as it includes starting
the search's worker processes, which later searches reuse:

* the inbox, first page, and a filtered page (status, language, page 2): 20 runs each;
* one testimony page (unseals details and statement, appends an audit event): 20 runs;
* a full-text search over every statement ("мечеть"): 5 runs; every run must return
  exactly the testimonies known to hold the word, newest first, having searched all.

Targets: inbox pages under 100 ms; search under 2 s. The setup time and the size of the
database (SQLite: the main file after a WAL checkpoint; PostgreSQL: pg_database_size,
after ANALYZE) are printed too, and the load average before and after, as other work on
the machine slows the figures (search is CPU-bound on every core).

PostgreSQL: the database named by TEST_DATABASE_URL is emptied (its public schema is
dropped and created again) before and after, as the tests do. Use a scratch database.

This is not a test: it prints the figures and which targets are met, and exits 0 whatever
they are (1 only if the benchmark itself cannot run or a search returns wrong results).

    .venv/bin/python bench/review.py [--testimonies 10000] [--workers N] [--batch 250]
                                     [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import multiprocessing
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INBOX_TARGET_MS = 100.0
SEARCH_TARGET_MS = 2000.0
INBOX_RUNS = 20
PAGE_RUNS = 20
SEARCH_RUNS = 5
NEEDLE = "мечеть"
NEEDLE_FORMS = ("мечеть", "Мечеть", "МЕЧЕТЬ", "мечеть")
FILTERED = {"status": "in_review", "language": "ru", "page": "2"}
SETUP_ENV = {
    "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_ARGON2_TIME_COST": "1",
    "TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_RECEIPT_ARGON2_TIME_COST": "1",
    "TESTIMONY_SCRYPT_WORK_FACTOR": "10",
}
PASSWORD = "Invented benchmark passphrase 7431"
REVIEWER = "bench-reviewer"

# --- invented text ------------------------------------------------------------------------

# Invented phrases only: no real person, and nothing here contains the needle.
PHRASES = {
    "ru": [
        "ночью мы услышали крики на улице",
        "соседи выбежали из домов",
        "по дороге ехали машины без номеров",
        "у магазина собралась толпа",
        "кто-то бросал камни в окна",
        "дети плакали в подвале до утра",
        "я видел дым над крышами",
        "полиция приехала только через несколько часов",
        "мы спрятались у родственников",
        "свет отключили около полуночи",
        "на перекрёстке горела машина",
        "утром мы вернулись и увидели разбитые окна",
        "мой брат помогал раненым",
        "люди звонили, но никто не отвечал",
        "двери сарая были выломаны",
        "мы слышали выстрелы со стороны поля",
        "старики не могли уйти сами",
        "скот разбежался по степи",
        "я записал, что запомнил, на следующий день",
        "говорили на двух языках",
        "на остановке стояли люди с палками",
        "врачи приехали поздно",
        "мы не знали, куда идти",
        "дорогу перекрыли грузовиком",
    ],
    "kk": [
        "түнде көшеден айқай естідік",
        "көршілер үйлерінен жүгіріп шықты",
        "жолда нөмірсіз көліктер жүрді",
        "дүкеннің жанына көп адам жиналды",
        "біреу терезелерге тас лақтырды",
        "балалар таңға дейін жертөледе жылады",
        "шатырлардың үстінде түтін көрдім",
        "полиция бірнеше сағаттан кейін ғана келді",
        "біз туыстарымыздың үйіне тығылдық",
        "түн ортасында жарық өшті",
        "жол қиылысында көлік жанып жатты",
        "таңертең қайтып келсек терезелер сынған екен",
        "ағам жараланғандарға көмектесті",
        "адамдар қоңырау шалды бірақ ешкім жауап бермеді",
        "қораның есігі сындырылған",
        "даланың жағынан атыс дауысын естідік",
        "қарттар өздері кете алмады",
        "мал далаға шашылып кетті",
    ],
    "en": [
        "at night we heard shouting in the street",
        "the neighbours ran out of their houses",
        "cars without number plates drove along the road",
        "a crowd gathered by the shop",
        "someone threw stones at the windows",
        "the children cried in the cellar until dawn",
        "I saw smoke above the roofs",
        "the police came only hours later",
        "we hid with relatives",
        "the power went off around midnight",
        "a car was burning at the crossroads",
        "in the morning the windows were broken",
        "my brother helped the wounded",
        "people phoned but nobody answered",
        "the shed doors had been forced",
        "we heard shots from the direction of the fields",
        "the old people could not leave by themselves",
        "the cattle scattered over the steppe",
    ],
}
assert not any(NEEDLE in p.casefold() for ps in PHRASES.values() for p in ps)
LANGUAGE_WEIGHTS = (("ru", 55), ("kk", 25), ("en", 20))
STATUS_WEIGHTS = (
    ("new", 40),
    ("in_review", 30),
    ("corroborated", 15),
    ("not_credible", 10),
    ("withdrawn", 5),
)


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([w for w, _ in weighted], [n for _, n in weighted])[0]


def invented_statement(rng: random.Random, language: str, needle: str | None) -> str:
    """Sentences of invented phrases, 300 to 5,000 characters (mostly shorter)."""
    band = rng.random()
    length = (
        rng.randint(300, 1000)
        if band < 0.4
        else rng.randint(1000, 2500)
        if band < 0.8
        else rng.randint(2500, 4970)
    )
    phrases = PHRASES[language]
    sentences: list[str] = []
    size = 0
    while size < length:
        words = ", ".join(rng.sample(phrases, rng.randint(1, 3)))
        sentences.append(words[0].upper() + words[1:] + ".")
        size += len(sentences[-1]) + 1
    text = " ".join(sentences)[:length].rsplit(" ", 1)[0].rstrip(",.") + "."
    if needle:
        ends = [m.end() for m in re.finditer(r"\. ", text)] or [len(text)]
        at = rng.choice(ends)
        text = text[:at] + "%s была рядом. " % needle + text[at:]
    return text.strip()


@dataclass
class Spec:
    """One invented testimony, before sealing."""

    index: int
    language: str
    statement: str
    details: dict[str, object]
    contact: str
    status: str
    place: str
    relation: str
    consent: str
    received_on: dt.date
    updated_on: dt.date
    assigned: bool


def make_specs(count: int, seed: int = 2020) -> tuple[list[Spec], set[int]]:
    from store.vocabulary import CONSENTS, PLACES, RELATIONS

    rng = random.Random(seed)
    with_needle = set(rng.sample(range(count), min(12, count)))
    today = dt.date.today()
    start = today - dt.timedelta(days=730)
    specs = []
    days = sorted(rng.randrange(731) for _ in range(count))  # received in id order
    for index in range(count):
        language = _pick(rng, LANGUAGE_WEIGHTS)
        needle = NEEDLE_FORMS[index % len(NEEDLE_FORMS)] if index in with_needle else None
        place = rng.choice(list(PLACES))
        relation = rng.choice(RELATIONS)
        consent = rng.choice(CONSENTS)
        received = start + dt.timedelta(days=days[index])
        updated = min(received + dt.timedelta(days=rng.choice((0, 0, 0, 3, 14, 60))), today)
        when = dt.date(2020, 2, rng.randint(5, 9)) if rng.random() < 0.7 else None
        details = {
            "when_date": when.isoformat() if when else None,
            "when_approx": "" if when else "в начале февраля",
            "place": place,
            "place_other": "" if place != "other" else "invented farm",
            "relation": relation,
            "consent": consent,
            "language": language,
        }
        contact = ("Signal +7 700 555 %04d (invented)" % index) if rng.random() < 0.33 else ""
        status = _pick(rng, STATUS_WEIGHTS)
        specs.append(
            Spec(
                index,
                language,
                invented_statement(rng, language, needle),
                details,
                contact,
                status,
                place,
                relation,
                consent,
                received,
                updated,
                status != "new" and rng.random() < 0.5,
            )
        )
    return specs, with_needle


# --- sealing workers ------------------------------------------------------------------------


@dataclass
class Sealed:
    """What seal_blob wrote for one item: the blob row's values and its chunk rows."""

    header: bytes
    payload_size: int
    chunk_count: int
    chunks: list[bytes]


@dataclass
class SealedTestimony:
    spec: Spec
    receipt_hash: str
    reply_public_key: str
    details: Sealed
    contact: Sealed | None
    statement: Sealed


_WORKER: dict[str, object] = {}


def _worker_init(settings: object, salt: object, recipient_rows: list[dict]) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from store.models import Base, Recipient

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = Session(engine)
    for row in recipient_rows:
        session.add(Recipient(**row))
    session.commit()
    _WORKER.update(
        settings=settings,
        salt=salt,
        session=session,
        recipients=list(session.query(Recipient).order_by(Recipient.id)),
    )


def _sealed(session, blob) -> Sealed:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from store.models import BlobChunk

    chunks = list(
        session.scalars(
            select(BlobChunk.data).where(BlobChunk.blob_id == blob.id).order_by(BlobChunk.seq)
        )
    )
    return Sealed(blob.header, blob.payload_size, blob.chunk_count, chunks)


def _seal_specs(specs: list[Spec]) -> list[SealedTestimony]:
    """Seal as intake.submission.receive does, into the worker's scratch database."""
    from store import receipts
    from store.blobs import seal_document

    session = _WORKER["session"]
    out = []
    for spec in specs:
        code = receipts.new_code()
        keys = receipts.ReceiptKeys(
            _WORKER["settings"],
            _WORKER["salt"],  # type: ignore[arg-type]
            receipts.normalize(code) or "",
        )
        details = _sealed(session, seal_document(session, spec.details))
        contact = None
        if spec.contact.strip():
            contact = _sealed(session, seal_document(session, {"contact": spec.contact}))
        statement = _sealed(session, seal_document(session, {"text": spec.statement}))
        session.rollback()  # type: ignore[attr-defined]
        out.append(
            SealedTestimony(
                spec, keys.lookup_hash, str(keys.reply_recipient), details, contact, statement
            )
        )
    return out


# --- building an instance ----------------------------------------------------------------


@dataclass
class Built:
    label: str
    settings: object  # what the review app runs with
    totp_secret: str
    expected: list[int]  # testimony ids holding the needle, newest first
    filtered_total: int
    middle_id: int
    setup_seconds: float
    db_bytes: int
    notes: list[str] = field(default_factory=list)


def _new_blob(session, sealed: Sealed):  # type: ignore[no-untyped-def]
    from store.models import SealedBlob

    blob = SealedBlob(
        header=sealed.header, payload_size=sealed.payload_size, chunk_count=sealed.chunk_count
    )
    session.add(blob)
    return blob


def _blob_rows(session, recipients, blob, sealed: Sealed) -> None:  # type: ignore[no-untyped-def]
    """What BlobWriter adds besides the blob row: its recipients and its chunks."""
    from store.models import BlobChunk, BlobRecipient

    for recipient in recipients:
        session.add(BlobRecipient(blob_id=blob.id, recipient_id=recipient.id))
    for seq, data in enumerate(sealed.chunks):
        session.add(BlobChunk(blob_id=blob.id, seq=seq, data=data))


def _store_batch(
    db,
    recipients,
    reviewer_id: int,  # type: ignore[no-untyped-def]
    batch: list[SealedTestimony],
) -> list[int]:
    """Store the rows receive() stores, in its order, for a batch of testimonies."""
    from store import audit
    from store.models import Statement, Testimony
    from store.receipts import new_witness

    ids = []
    with db.transaction() as session:
        witnesses, blobs = [], []
        for item in batch:
            witnesses.append(
                new_witness(
                    session, item.receipt_hash, item.reply_public_key, item.spec.received_on
                )
            )
        for item in batch:
            blobs.append(
                [
                    None if sealed is None else (_new_blob(session, sealed), sealed)
                    for sealed in (item.details, item.contact, item.statement)
                ]
            )
        session.flush()
        for row in blobs:
            for pair in row:
                if pair is not None:
                    _blob_rows(session, recipients, *pair)
        testimonies = []
        for item, witness, (details, contact, _statement) in zip(
            batch, witnesses, blobs, strict=True
        ):
            details, contact = details[0], contact[0] if contact else None
            spec = item.spec
            testimony = Testimony(
                witness_id=witness.id,
                received_on=spec.received_on,
                updated_on=spec.updated_on,
                status=spec.status,
                language=spec.language,
                place=spec.place,
                relation=spec.relation,
                consent=spec.consent,
                details_blob_id=details.id,
                contact_blob_id=contact.id if contact else None,
                assigned_to=reviewer_id if spec.assigned else None,
            )
            session.add(testimony)
            testimonies.append(testimony)
        session.flush()
        for item, testimony, row in zip(batch, testimonies, blobs, strict=True):
            session.add(
                Statement(
                    testimony_id=testimony.id,
                    received_on=item.spec.received_on,
                    blob_id=row[2][0].id,
                )
            )
            audit.append(
                session,
                "witness",
                "testimony.received",
                "testimony:%d" % testimony.id,
                {"attachments": 0},
                day_only=True,
            )
            ids.append(testimony.id)
    return ids


def _db_bytes(db) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with db.engine.connect() as conn:
        if db.settings.is_sqlite:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            path = Path(db.settings.database_url.removeprefix("sqlite:///"))
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar())


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def build(
    label: str, folder: Path, database_url: str | None, count: int, workers: int, batch_size: int
) -> Built:
    from sqlalchemy import func, select, text

    import crypto
    from review import accounts
    from store import instance as instance_module
    from store import settings as settings_module
    from store.blobs import active_recipients
    from store.db import Database
    from store.instance import receipt_kdf
    from store.models import Testimony

    env = {"TESTIMONY_INSTANCE_PATH": str(folder / "instance"), **SETUP_ENV}
    if os.environ.get("TESTIMONY_RECIPIENT_KEYS"):
        env["TESTIMONY_RECIPIENT_KEYS"] = os.environ["TESTIMONY_RECIPIENT_KEYS"]
    if database_url:
        env["TESTIMONY_DATABASE_URL"] = database_url
    setup_settings = settings_module.load(env)
    app_settings = settings_module.load({k: v for k, v in env.items() if k not in SETUP_ENV})

    started = time.perf_counter()
    specs, with_needle = make_specs(count)
    created = instance_module.init(setup_settings, out=lambda *_: None)
    assert created is not None
    recovery = crypto.parse_identities_file(created.read_text())[0]
    db = Database(setup_settings)
    with db.transaction() as session:
        person = accounts.create_reviewer(session, setup_settings, REVIEWER, PASSWORD)
        reviewer_id, totp_secret = person.reviewer.id, person.totp_secret
        recipients = active_recipients(session)
        salt = receipt_kdf(session)
        rows = [
            {
                c: getattr(r, c)
                for c in ("id", "public_key", "kind", "label", "active", "created_on")
            }
            for r in recipients
        ]
        session.expunge_all()
    assert {r.public_key for r in recipients} == {
        str(recovery.recipient),
        str(person.identity.recipient),
    }  # type: ignore[attr-defined]

    chunks = [specs[i : i + 25] for i in range(0, len(specs), 25)]
    ids: list[int] = []
    pending: list[SealedTestimony] = []
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(setup_settings, salt, rows)
    ) as pool:
        for sealed in pool.map(_seal_specs, chunks):
            pending.extend(sealed)
            if len(pending) >= batch_size:
                ids += _store_batch(db, recipients, reviewer_id, pending)
                pending = []
        if pending:
            ids += _store_batch(db, recipients, reviewer_id, pending)
    setup_seconds = time.perf_counter() - started

    expected = sorted((ids[i] for i in with_needle), reverse=True)
    with db.sessions() as session:
        filtered_total = (
            session.scalar(
                select(func.count())
                .select_from(Testimony)
                .where(
                    Testimony.status == FILTERED["status"],
                    Testimony.language == FILTERED["language"],
                )
            )
            or 0
        )
    if not setup_settings.is_sqlite:
        # What autovacuum would soon do after such a load: without statistics the
        # planner misjudges (and JIT-compiles) the queries measured here.
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    size = _db_bytes(db)
    db.dispose()
    return Built(
        label,
        app_settings,
        totp_secret,
        expected,
        filtered_total,
        ids[len(ids) // 2],
        setup_seconds,
        size,
    )


# --- measuring ----------------------------------------------------------------------------

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
HITS = re.compile(r'<ol class="hits">(.*?)</ol>', re.S)
HIT_ID = re.compile(r'href="/testimony/(\d+)"')
SEARCHED = re.compile(r"(\d+) statements? searched")


def logged_in_client(app, secret: str):  # type: ignore[no-untyped-def]
    import pyotp

    client = app.test_client()
    token = CSRF.search(client.get("/login").get_data(as_text=True))
    if not token:
        sys.exit("no CSRF token on the login page")
    response = client.post(
        "/login",
        data={
            "csrf_token": token.group(1),
            "name": REVIEWER,
            "password": PASSWORD,
            "code": pyotp.TOTP(secret).now(),
        },
    )
    if response.status_code != 302:
        sys.exit("login failed: status %d" % response.status_code)
    return client


def timed_ms(client, url: str, runs: int, check=None) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The first request's time (warm-up: templates compiled, pools started), and the
    median of ``runs`` more."""
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            sys.exit("%s answered %d" % (url, response.status_code))
        if check:
            check(response.get_data(as_text=True))
        times.append(elapsed * 1000)
    return times[0], statistics.median(times[1:])


@dataclass
class Figures:
    inbox_first: float
    inbox_filtered: float
    testimony: float
    search: float
    search_cold: float


def measure(built: Built, count: int) -> Figures:
    from urllib.parse import quote, urlencode

    from review import create_app

    app = create_app(built.settings)
    try:
        client = logged_in_client(app, built.totp_secret)

        def inbox_total(expected: int):  # type: ignore[no-untyped-def]
            def check(html: str) -> None:
                if "(%d)" % expected not in html:
                    sys.exit("the inbox does not show %d testimonies" % expected)

            return check

        def search_check(html: str) -> None:
            block = HITS.search(html)
            found = [int(x) for x in HIT_ID.findall(block.group(1))] if block else []
            searched = SEARCHED.search(html)
            if found != built.expected or not searched or int(searched.group(1)) != count:
                sys.exit(
                    "search returned %s (searched %s), expected %s (searched %d)"
                    % (found, searched.group(1) if searched else "?", built.expected, count)
                )

        inbox_first = timed_ms(client, "/", INBOX_RUNS, inbox_total(count))[1]
        inbox_filtered = timed_ms(
            client, "/?" + urlencode(FILTERED), INBOX_RUNS, inbox_total(built.filtered_total)
        )[1]
        testimony = timed_ms(client, "/testimony/%d" % built.middle_id, PAGE_RUNS)[1]
        search_cold, search = timed_ms(
            client, "/search/?q=" + quote(NEEDLE), SEARCH_RUNS, search_check
        )
        return Figures(inbox_first, inbox_filtered, testimony, search, search_cold)
    finally:
        app.extensions["testimony_db"].dispose()


def verdict(value: float, target: float) -> str:
    return "met" if value < target else "NOT MET"


def report(built: Built, figures: Figures, count: int) -> None:
    print("%s" % built.label)
    print("  setup (%d testimonies sealed and stored)  %8.1f s" % (count, built.setup_seconds))
    print("  database size                             %8.1f MiB" % (built.db_bytes / 2**20))
    rows = [
        ("inbox, first page", figures.inbox_first, INBOX_TARGET_MS),
        (
            "inbox, filtered page (%d match)" % built.filtered_total,
            figures.inbox_filtered,
            INBOX_TARGET_MS,
        ),
        ("one testimony page", figures.testimony, None),
        ("search over %d statements" % count, figures.search, SEARCH_TARGET_MS),
        ("  the first search of the process", figures.search_cold, None),
    ]
    for name, value, target in rows:
        if target is None:
            print("  %-40s %8.1f ms   (no target)" % (name, value))
            continue
        print(
            "  %-40s %8.1f ms   target < %5.0f ms   %s"
            % (name, value, target, verdict(value, target))
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testimonies", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--tmpdir", default=None)
    # BENCH_ARGS in the Makefile goes to every benchmark: leave the others' options alone.
    args, others = parser.parse_known_args()
    if others:
        print("(ignoring options meant for other benchmarks: %s)" % " ".join(others))

    keys = os.environ.get("TESTIMONY_RECIPIENT_KEYS", "pq")
    print(
        "Review desk: %d testimonies, %s recipient keys, %d cores, sealing on %d processes"
        % (args.testimonies, keys, os.cpu_count() or 1, args.workers)
    )
    print(
        "Medians: inbox %d runs, testimony page %d, search %d; targets: inbox < %.0f ms, "
        "search < %.0f s"
        % (INBOX_RUNS, PAGE_RUNS, SEARCH_RUNS, INBOX_TARGET_MS, SEARCH_TARGET_MS / 1000)
    )
    print("load average at the start: %.2f %.2f %.2f" % os.getloadavg())
    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        backends.append(("PostgreSQL", url))
    for label, database_url in backends:
        folder = Path(tempfile.mkdtemp(prefix="bench-review-", dir=args.tmpdir))
        try:
            if database_url:
                reset_postgres(database_url)
            built = build(label, folder, database_url, args.testimonies, args.workers, args.batch)
            figures = measure(built, args.testimonies)
            report(built, figures, args.testimonies)
        finally:
            if database_url:
                reset_postgres(database_url)
            shutil.rmtree(folder, ignore_errors=True)
        sys.stdout.flush()
    if not url:
        print("PostgreSQL: skipped (TEST_DATABASE_URL is not set)")
    print("load average at the end: %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
