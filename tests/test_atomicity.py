"""Invariant 5: a testimony and all its attachments are committed in one transaction.

A separate process opens an existing instance and stores a testimony with several files;
it kills itself with SIGKILL at chosen moments inside that transaction (while sealing the
first statement, in the middle of the second file, on the last chunk, right before the
database commit). Afterwards the database holds exactly what it held before, and is
intact. Killed right after the commit, it holds the whole testimony, every blob of which
unseals. A Python exception in the middle of sealing a file leaves nothing either, and
reaches the witness as an error page, never as a receipt.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select, text

from tests.conftest import FAST_ARGON2, make_settings, reset_postgres

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
RECEIPT = re.compile(rb"\d{4} \d{4} \d{4} \d{4} \d{4}")

# The child process: open the instance named by the environment, fill upload spools from
# the given files, and call intake.submission.receive, dying where it is told to.
CHILD = r"""
import json, os, signal, sys
from sqlalchemy import event
from sqlalchemy.orm import Session

from intake import submission
from intake.spool import SealedSpool, UploadBudget
from store import blobs, settings as settings_module
from store.db import Database

mode, files = sys.argv[1], json.loads(sys.argv[2])
settings = settings_module.load()
db = Database(settings)

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

trace = []  # for each chunk stored: which file was being sealed (-1: no file)
current = {"file": -1}
seal_file = submission._seal_file
def tracing_seal_file(session, testimony, received):
    current["file"] += 1
    return seal_file(session, testimony, received)
submission._seal_file = tracing_seal_file

emit = blobs._ChunkSink._emit
def counting_emit(self, data):
    emit(self, data)
    trace.append(current["file"])
    if mode == "emit:%d" % len(trace):
        self._session.flush()  # make sure what was sealed so far reached the database
        die()
blobs._ChunkSink._emit = counting_emit

if mode == "before-commit":
    event.listen(db.engine, "commit", lambda conn: die())
if mode == "after-commit":
    event.listen(Session, "after_commit", lambda session: die())

budget = UploadBudget(per_file=settings.max_file_size, remaining=settings.max_submission_size)
received = []
for path, name, mime in files:
    spool = SealedSpool(budget)
    with open(path, "rb") as handle:
        while block := handle.read(65536):
            spool.write(block)
    received.append(submission.check_upload(spool, name, mime))

code = submission.receive(db, settings, submission.Submission(
    statement="Invented statement: the lorries came at dawn, %s." % mode,
    when_date=None, when_approx="at dawn", place="sortobe", place_other="",
    relation="saw", consent="counts", contact="invented contact: ask at the bakery",
    language="ru", files=received))
print(json.dumps({"code": code, "trace": trace}))
"""

TABLES = (
    "witness",
    "testimony",
    "statement",
    "attachment",
    "sealed_blob",
    "blob_chunk",
    "blob_recipient",
    "audit_event",
    "message",
)


def uploads(folder: Path) -> list[tuple[str, str, str]]:
    """Three invented files: two recordings of several chunks each, and a photo."""
    folder.mkdir(exist_ok=True)
    first = b"ID3" + os.urandom(int(2.5 * MIB))
    second = b"ID3" + os.urandom(int(2.2 * MIB))
    out = io.BytesIO()
    Image.frombytes("RGB", (40, 30), os.urandom(40 * 30 * 3)).save(out, "JPEG")
    listing = []
    for name, data, mime in (
        ("first-voice.mp3", first, "audio/mpeg"),
        ("second-voice.mp3", second, "audio/mpeg"),
        ("photo.jpg", out.getvalue(), "image/jpeg"),
    ):
        (folder / name).write_bytes(data)
        listing.append((str(folder / name), name, mime))
    return listing


def run_child(settings, mode: str, files) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        **FAST_ARGON2,
        "TESTIMONY_INSTANCE_PATH": str(settings.instance_path),
        "TESTIMONY_DATABASE_URL": settings.database_url,
        "PYTHONPATH": path,
    }
    return subprocess.run(
        [sys.executable, "-c", CHILD, mode, json.dumps(files)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )


def counts(db) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            table: conn.execute(text("SELECT count(*) FROM %s" % table)).scalar_one()
            for table in TABLES
        }


def unseal_everything(db, identity, sent: dict[str, bytes]) -> int:
    """Unseal every blob every testimony references; check the originals against what
    was sent. Returns how many attachments were checked."""
    from store.blobs import read_item, unpad_document
    from store.models import Attachment, SealedBlob, Testimony

    checked = 0
    with db.sessions() as session:

        def unseal(blob_id: int) -> bytes:
            blob = session.get(SealedBlob, blob_id)
            assert blob is not None, blob_id
            return read_item(session, blob.id, [identity])

        for testimony in session.scalars(select(Testimony)):
            assert "when_approx" in unpad_document(unseal(testimony.details_blob_id))
            assert testimony.contact_blob_id is not None
            assert "contact" in unpad_document(unseal(testimony.contact_blob_id))
            assert testimony.statements
            for statement in testimony.statements:
                assert "lorries" in unpad_document(unseal(statement.blob_id))["text"]
            attachments = session.scalars(
                select(Attachment).where(Attachment.testimony_id == testimony.id)
            ).all()
            assert len(attachments) == len(sent)
            for attachment in attachments:
                original = unseal(attachment.original_blob_id)
                meta = json.loads(unseal(attachment.metadata_blob_id))
                assert original == sent[meta["declared_name"]]
                assert meta["sha256"] == hashlib.sha256(original).hexdigest()
                if attachment.working_blob_id:
                    assert unseal(attachment.working_blob_id)[:3] == b"\xff\xd8\xff"
                checked += 1
        blob_total = session.scalar(select(func.count()).select_from(SealedBlob))
        referenced = session.scalar(select(func.count()).select_from(Attachment)) * 2 + sum(
            1 for a in session.scalars(select(Attachment)) if a.working_blob_id
        )
        testimonies = session.scalar(select(func.count()).select_from(Testimony))
        statements = session.scalar(text("SELECT count(*) FROM statement"))
        contacts = session.scalar(
            text("SELECT count(*) FROM testimony WHERE contact_blob_id IS NOT NULL")
        )
        # Every blob belongs to something: no orphan left by a half-finished testimony.
        assert blob_total == referenced + testimonies + statements + contacts
    return checked


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """(settings, recovery identity, Database) of an initialised instance."""
    import crypto
    from store import instance as instance_module
    from store.db import Database

    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
    settings = make_settings(tmp_path / "instance", url)
    created = instance_module.init(settings, out=lambda *_: None)
    identity = crypto.parse_identities_file(created.read_text())[0]
    db = Database(settings)
    yield settings, identity, db
    db.dispose()
    if url:
        reset_postgres(url)


def test_a_killed_process_leaves_the_whole_testimony_or_nothing(backend, tmp_path):
    settings, identity, db = backend
    files = uploads(tmp_path / "uploads")
    sent = {name: Path(path).read_bytes() for path, name, _mime in files}

    # One testimony stored in full first, so "nothing" is measured against a real state.
    done = run_child(settings, "complete", files)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    trace = json.loads(done.stdout)["trace"]
    assert trace.count(0) >= 3 and trace.count(1) >= 3, trace  # files span several chunks
    before = counts(db)
    assert before["testimony"] == 1 and before["attachment"] == 3
    assert unseal_everything(db, identity, sent) == 3

    second_file = trace.index(1) + 1  # the second file's first chunk is stored ...
    kill_points = [
        "emit:1",
        "emit:%d" % (second_file + 1),
        "emit:%d" % len(trace),
        "before-commit",
    ]  # ... and the kill comes with its second
    if not settings.is_sqlite:
        kill_points = kill_points[1:2] + kill_points[3:]
    for mode in kill_points:
        killed = run_child(settings, mode, files)
        assert killed.returncode == -signal.SIGKILL, (mode, killed.stderr.decode()[-3000:])
        assert not RECEIPT.search(killed.stdout), mode  # no receipt was ever handed out
        assert counts(db) == before, mode
        if settings.is_sqlite:
            with db.engine.connect() as conn:
                assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        assert unseal_everything(db, identity, sent) == 3

    # Killed just after the commit: the witness saw no receipt, but nothing is lost.
    late = run_child(settings, "after-commit", files)
    assert late.returncode == -signal.SIGKILL, late.stderr.decode()[-3000:]
    after = counts(db)
    assert after["testimony"] == 2 and after["attachment"] == 6
    assert unseal_everything(db, identity, sent) == 6


def test_a_successful_receive_stores_every_file_completely(instance, tmp_path):
    from intake import submission
    from intake.spool import SealedSpool, UploadBudget
    from store.db import Database

    settings, identity = instance
    files = uploads(tmp_path / "uploads")
    sent = {name: Path(path).read_bytes() for path, name, _mime in files}
    budget = UploadBudget(per_file=settings.max_file_size, remaining=settings.max_submission_size)
    received = []
    for path, name, mime in files:
        spool = SealedSpool(budget)
        spool.write(Path(path).read_bytes())
        received.append(submission.check_upload(spool, name, mime))
    db = Database(settings)
    try:
        code = submission.receive(
            db,
            settings,
            submission.Submission(
                statement="Invented statement: the lorries came twice.",
                when_date=None,
                when_approx="twice",
                place="",
                place_other="",
                relation="heard",
                consent="quotes",
                contact="invented contact",
                language="kk",
                files=received,
            ),
        )
        assert RECEIPT.fullmatch(code.encode())
        assert counts(db)["attachment"] == len(files)
        assert unseal_everything(db, identity, sent) == len(files)
    finally:
        db.dispose()


class InventedStorageFailure(RuntimeError):
    pass


def _fail_in_the_third_file(monkeypatch):
    """Make sealing raise once the third file's first chunk is stored (and flushed)."""
    from intake import submission
    from store import blobs

    state = {"file": -1, "chunks": 0}
    seal_file = submission._seal_file

    def tracing_seal_file(session, testimony, received):
        state["file"] += 1
        return seal_file(session, testimony, received)

    emit = blobs._ChunkSink._emit

    def failing_emit(self, data):
        emit(self, data)
        if state["file"] == 2:
            self._session.flush()
            raise InventedStorageFailure("invented failure while sealing the third file")

    monkeypatch.setattr(submission, "_seal_file", tracing_seal_file)
    monkeypatch.setattr(blobs._ChunkSink, "_emit", failing_emit)
    return state


def test_a_failure_while_sealing_reaches_the_witness_as_an_error_not_a_receipt(
    intake_app, client, tmp_path, monkeypatch
):
    db = intake_app.extensions["testimony_db"]
    before = counts(db)
    files = uploads(tmp_path / "uploads")
    state = _fail_in_the_third_file(monkeypatch)
    intake_app.config["TESTING"] = False  # as deployed: errors become the error page
    data = {
        "statement": "Invented statement: the lorries came at night.",
        "relation": "saw",
        "consent": "counts",
        "place": "otar",
        "files": [(open(path, "rb"), name, mime) for path, name, mime in files],
    }
    try:
        response = client.post("/ru/testimony/", data=data, content_type="multipart/form-data")
    finally:
        for handle, _name, _mime in data["files"]:
            handle.close()
    assert state["file"] == 2  # the failure did come in the third file
    assert response.status_code == 500
    assert b'class="code"' not in response.data
    assert not RECEIPT.search(response.data)
    assert counts(db) == before


def test_a_failure_while_sealing_reaches_the_caller_of_receive(instance, tmp_path, monkeypatch):
    from intake import submission
    from intake.spool import SealedSpool, UploadBudget
    from store.db import Database

    settings, _identity = instance
    budget = UploadBudget(per_file=settings.max_file_size, remaining=settings.max_submission_size)
    received = []
    for path, name, mime in uploads(tmp_path / "uploads"):
        spool = SealedSpool(budget)
        spool.write(Path(path).read_bytes())
        received.append(submission.check_upload(spool, name, mime))
    _fail_in_the_third_file(monkeypatch)
    db = Database(settings)
    try:
        before = counts(db)
        with pytest.raises(InventedStorageFailure):
            submission.receive(
                db,
                settings,
                submission.Submission(
                    statement="Invented statement.",
                    when_date=None,
                    when_approx="",
                    place="",
                    place_other="",
                    relation="saw",
                    consent="counts",
                    contact="",
                    language="ru",
                    files=received,
                ),
            )
        assert counts(db) == before
    finally:
        db.dispose()
