"""``testimony reviewer key-file``: a reviewer's key leaves the database exactly as it is
kept there, an age file sealed to their password, and the reference ``age`` tool opens it.

The command runs as an operator would run it (the console script in a subprocess); the
reviewer's password is typed into ``age`` on a pseudo-terminal, as ``age`` reads it from
the terminal only. Everything here is invented."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

import crypto
from store.blobs import read_item, sealed_stream, unpad_document
from store.models import AuditEvent, Reviewer, SealedBlob, Statement

from .conftest import FAST_ARGON2, ROOT, database_env
from .intake_helpers import submit
from .review_helpers import make_desk
from .test_age_interop import ENTER, run_with_terminal

NAME = "zarina-testova"
PASSWORD = "Invented key-file pass 73 ok"
STATEMENT = (
    "Invented statement: at dawn two vans without plates stopped by the Sortobe bridge "
    "and men in black uniforms searched the houses along the canal."
)
OTHER_TEXT = "Invented note sealed only for the key-file test.\n" * 40


@pytest.fixture
def desk(tmp_path, monkeypatch):
    # X25519 keys: the installed `age` may predate the post-quantum recipient type.
    desk = make_desk(tmp_path, monkeypatch, TESTIMONY_RECIPIENT_KEYS="x25519")
    yield desk
    desk.close()


def _env(desk, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTIMONY_")}
    env.update(
        FAST_ARGON2,
        TESTIMONY_INSTANCE_PATH=str(desk.settings.instance_path),
        TESTIMONY_SCRYPT_WORK_FACTOR="4",
        TESTIMONY_RECIPIENT_KEYS="x25519",
        **database_env(desk.settings.instance_path),
        **extra,
    )
    return env


def _testimony(desk, *args: str, **extra: str) -> subprocess.CompletedProcess[bytes]:
    program = os.path.join(os.path.dirname(sys.executable), "testimony")
    return subprocess.run(
        [program, *args],
        cwd=ROOT,
        env=_env(desk, **extra),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _events(desk, action: str) -> list[tuple[str, str, dict]]:
    with desk.db.sessions() as session:
        return [
            (e.actor, e.subject, json.loads(e.details))
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        ]


def _age(age: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [age, *args], cwd=ROOT, capture_output=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_key_file_opens_with_age_and_its_identity_opens_the_instances_items(
    desk, age_binary: str, tmp_path: Path
):
    added = _testimony(desk, "reviewer", "add", NAME, TESTIMONY_PASSWORD=PASSWORD)
    assert added.returncode == 0, added.stderr
    response = submit(desk.intake_app.test_client(), lang="en", statement=STATEMENT)
    assert response.status_code == 200, response.data  # sealed to the reviewer too

    key_age = tmp_path / "key.age"
    written = _testimony(desk, "reviewer", "key-file", NAME, "-o", str(key_age))
    assert written.returncode == 0, written.stderr
    with desk.db.sessions() as session:
        reviewer = session.scalar(select(Reviewer).where(Reviewer.name == NAME))
        stored = bytes(reviewer.identity_sealed)
        public_key = reviewer.recipient.public_key
    assert key_age.read_bytes() == stored  # exactly as stored: nothing decrypted
    assert stored.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert stat.S_IMODE(key_age.stat().st_mode) == 0o600
    assert _events(desk, "reviewer.key_file") == [("operator", "reviewer:%s" % NAME, {})]
    assert desk.audit_ok()

    # Like `age-keygen -o`: an existing file is refused, unchanged, with one line.
    key_age.write_bytes(b"an earlier file the operator keeps")
    key_age.chmod(0o644)
    again = _testimony(desk, "reviewer", "key-file", NAME, "-o", str(key_age))
    assert again.returncode == 1
    assert again.stdout == b""
    message = again.stderr.decode()
    assert message.startswith("error: ") and "exists" in message, message
    assert message.count("\n") == 1 and "Traceback" not in message
    assert key_age.read_bytes() == b"an earlier file the operator keeps"
    assert stat.S_IMODE(key_age.stat().st_mode) == 0o644
    assert len(_events(desk, "reviewer.key_file")) == 1  # a refusal is not audited

    # The real `age`, with the reviewer's password typed on its terminal.
    key_age.unlink()
    assert _testimony(desk, "reviewer", "key-file", NAME, "-o", str(key_age)).returncode == 0
    key_txt = tmp_path / "key.txt"
    status, transcript, stderr = run_with_terminal(
        [age_binary, "-d", "-o", str(key_txt), str(key_age)], [(ENTER, PASSWORD)]
    )
    assert status == 0, (stderr, transcript)
    identity_text = key_txt.read_text()
    assert re.fullmatch(r"AGE-SECRET-KEY-1[0-9A-Z]+\n?", identity_text), "not an identity"
    assert str(crypto.parse_identities_file(identity_text)[0].recipient) == public_key

    # A wrong password opens nothing.
    refused = tmp_path / "refused.txt"
    status, _transcript, _stderr = run_with_terminal(
        [age_binary, "-d", "-o", str(refused), str(key_age)], [(ENTER, PASSWORD + "x")]
    )
    assert status != 0 and not (refused.exists() and refused.stat().st_size)

    # That identity file opens a real sealed statement of this instance with `age -d -i`...
    with desk.db.sessions() as session:
        blob_id = session.scalar(select(Statement.blob_id).order_by(Statement.id).limit(1))
        blob = session.get(SealedBlob, blob_id)
        (tmp_path / "statement.age").write_bytes(sealed_stream(session, blob).read())
        expected = read_item(session, blob_id, [desk.recovery])
    opened = _age(age_binary, "-d", "-i", str(key_txt), str(tmp_path / "statement.age"))
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == expected
    assert STATEMENT in json.dumps(unpad_document(opened.stdout), ensure_ascii=False)

    # ...and an item sealed to the reviewer's public key by `python -m crypto encrypt`.
    (tmp_path / "note.txt").write_text(OTHER_TEXT)
    sealed = subprocess.run(
        [sys.executable, "-m", "crypto", "encrypt", "-r", public_key, "-o"]
        + [str(tmp_path / "note.age"), str(tmp_path / "note.txt")],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert sealed.returncode == 0, sealed.stderr
    opened = _age(age_binary, "-d", "-i", str(key_txt), str(tmp_path / "note.age"))
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == OTHER_TEXT.encode()


def test_key_file_to_standard_output_but_never_to_a_terminal(desk, tmp_path: Path):
    desk.add_reviewer("timur-primerov")
    with desk.db.sessions() as session:
        stored = bytes(
            session.scalar(
                select(Reviewer.identity_sealed).where(Reviewer.name == "timur-primerov")
            )
        )
    piped = _testimony(desk, "reviewer", "key-file", "timur-primerov")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == stored
    dashed = _testimony(desk, "reviewer", "key-file", "timur-primerov", "-o", "-")
    assert dashed.returncode == 0 and dashed.stdout == stored

    # On a terminal: refused, like `age` refusing binary output there.
    program = os.path.join(os.path.dirname(sys.executable), "testimony")
    status, transcript, stderr = run_with_terminal(
        [program, "reviewer", "key-file", "timur-primerov"],
        [],
        env=_env(desk),
        stdout_to_terminal=True,
    )
    assert status == 1
    assert b"use -o" in stderr and stderr.count(b"\n") == 1, stderr
    assert b"age-encryption.org" not in transcript
    assert len(_events(desk, "reviewer.key_file")) == 2


def test_key_file_of_an_unknown_reviewer_is_one_line(desk, tmp_path: Path):
    out = tmp_path / "key.age"
    done = _testimony(desk, "reviewer", "key-file", "nobody-invented", "-o", str(out))
    assert done.returncode == 1
    assert done.stderr.decode() == "error: no reviewer named 'nobody-invented'\n"
    assert not out.exists()
    assert _events(desk, "reviewer.key_file") == []
