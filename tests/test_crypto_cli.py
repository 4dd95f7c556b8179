"""``python -m crypto``: what a reviewer typing age-style commands offline sees.

Every failure exits non-zero with one line on stderr that says what failed, and a failed
decryption to ``-o`` leaves no file behind. The streaming API stays constant-memory.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import crypto
from crypto import X25519Identity
from crypto.armor import BEGIN
from crypto.keys import identity_file_text

from .conftest import ROOT
from .test_age_interop import run_with_terminal

CHUNK = 64 * 1024
MiB = 1024 * 1024
PASSPHRASE_VAR = "TESTIMONY_TEST_PASSPHRASE"
PASSPHRASE = "invented: ночной автобус из Кордая"
STATEMENT = (
    b"Invented statement. On the night of 7 February two men in uniform stopped the "
    b"bus near the bridge and took the driver's phone.\n"
) * 1500


def cli(
    *args: str | Path, input: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m crypto`` in its own session: no terminal to fall back on."""
    full_env = dict(os.environ)
    full_env.pop(PASSPHRASE_VAR, None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "crypto", *map(str, args)],
        input=input,
        capture_output=True,
        cwd=ROOT,
        env=full_env,
        timeout=120,
        start_new_session=True,
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def failed(result: subprocess.CompletedProcess[bytes], *words: str) -> str:
    """Assert a failure with one stderr line containing ``words``; return that line."""
    assert result.returncode != 0
    err = result.stderr.decode(errors="replace")
    lines = err.splitlines()
    assert len(lines) == 1, "expected one line on stderr, got:\n" + err
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def identity_file(folder: Path, name: str) -> tuple[Path, X25519Identity]:
    identity = X25519Identity.generate()
    path = folder / name
    path.write_text(identity_file_text(identity, identity.recipient))
    return path, identity


def fast_passphrase_item(data: bytes, armor: bool = False) -> bytes:
    """A passphrase-sealed item with a low work factor, to keep the tests quick."""
    return crypto.seal_bytes(data, [crypto.ScryptRecipient(PASSPHRASE, work_factor=2)], armor=armor)


@pytest.fixture
def reviewer(tmp_path: Path) -> tuple[Path, X25519Identity]:
    return identity_file(tmp_path, "reviewer.txt")


# --- keygen -------------------------------------------------------------------------------


def test_keygen_writes_a_private_identity_file(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.txt"
    result = ok(cli("keygen", "-o", path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert result.stdout == b""  # the secret goes only to the file
    text = path.read_text()
    (identity,) = crypto.parse_identities_file(text)
    public = str(identity.recipient)  # type: ignore[attr-defined]
    assert "# public key: %s\n" % public in text
    assert result.stderr.decode().strip() == "Public key: %s" % public
    assert ok(cli("keygen", "-y", path)).stdout.decode() == public + "\n"


def test_keygen_refuses_to_overwrite_an_identity(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.txt"
    ok(cli("keygen", "-o", path))
    before = path.read_bytes()
    failed(cli("keygen", "-o", path), "exists")
    assert path.read_bytes() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_key_file_created_by_another_process_is_never_replaced(tmp_path: Path) -> None:
    # The name is taken between any check and the write: the writer must still refuse,
    # keep the other file byte for byte, and leave no temporary file behind.
    from crypto.keys import write_secret_file

    path = tmp_path / "recovery-key.txt"
    path.write_text("someone else's identity\n")
    with pytest.raises(FileExistsError):
        write_secret_file(str(path), "new identity\n")
    assert path.read_text() == "someone else's identity\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recovery-key.txt"]


def test_keygen_into_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    failed(cli("keygen", "-o", tmp_path / "no-such-folder" / "key.txt"), "cannot write")


def test_keygen_without_output_prints_the_identity() -> None:
    result = ok(cli("keygen"))
    text = result.stdout.decode()
    (identity,) = crypto.parse_identities_file(text)
    assert text.count("AGE-SECRET-KEY-1") == 1
    assert "# public key: %s\n" % identity.recipient in text  # type: ignore[attr-defined]
    other = crypto.parse_identities_file(ok(cli("keygen")).stdout.decode())[0]
    assert str(other) != str(identity)


# --- encrypt and decrypt ------------------------------------------------------------------


def test_recipient_round_trip_through_stdin_and_stdout(
    reviewer: tuple[Path, X25519Identity],
) -> None:
    key_file, identity = reviewer
    sealed = ok(cli("encrypt", "-r", identity.recipient, input=STATEMENT)).stdout
    assert sealed.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert b"bridge" not in sealed
    assert ok(cli("decrypt", "-i", key_file, input=sealed)).stdout == STATEMENT
    assert crypto.unseal_bytes(sealed, [identity]) == STATEMENT


def test_recipients_file_and_several_identities(tmp_path: Path) -> None:
    keys = [identity_file(tmp_path, "reviewer%d.txt" % n) for n in range(4)]
    recipients_file = tmp_path / "reviewers.txt"
    recipients_file.write_text(
        "# reviewers\n\n%s\n  %s  \n# end\n" % (keys[0][1].recipient, keys[1][1].recipient)
    )
    sealed = ok(
        cli("encrypt", "-R", recipients_file, "-r", keys[2][1].recipient, input=STATEMENT)
    ).stdout
    assert sealed.count(b"\n-> X25519 ") == 3
    for key_file, _ in keys[:3]:
        assert ok(cli("decrypt", "-i", key_file, input=sealed)).stdout == STATEMENT
    # Several -i: any one that matches is enough.
    assert ok(cli("decrypt", "-i", keys[3][0], "-i", keys[1][0], input=sealed)).stdout == STATEMENT
    result = cli("decrypt", "-i", keys[3][0], input=sealed)
    failed(result, "no identity matched")
    assert result.stdout == b""


def test_armor_and_files(tmp_path: Path, reviewer: tuple[Path, X25519Identity]) -> None:
    key_file, identity = reviewer
    source = tmp_path / "statement.txt"
    source.write_bytes(STATEMENT)
    sealed = tmp_path / "statement.age"
    ok(cli("encrypt", "-r", identity.recipient, "-a", "-o", sealed, source))
    text = sealed.read_bytes()
    assert text.startswith(BEGIN + b"\n") and text.isascii()
    assert max(len(line) for line in text.splitlines()) <= 64
    out = tmp_path / "opened.txt"
    assert ok(cli("decrypt", "-i", key_file, "-o", out, sealed)).stdout == b""
    assert out.read_bytes() == STATEMENT
    # Armored input on stdin is recognised as well.
    assert ok(cli("decrypt", "-i", key_file, input=text)).stdout == STATEMENT


def test_empty_input(reviewer: tuple[Path, X25519Identity]) -> None:
    key_file, identity = reviewer
    sealed = ok(cli("encrypt", "-r", identity.recipient)).stdout
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert ok(cli("decrypt", "-i", key_file, input=sealed)).stdout == b""


def test_outputs_are_replaced_like_age(
    tmp_path: Path, reviewer: tuple[Path, X25519Identity]
) -> None:
    """``-o`` replaces an existing file, as ``age -o`` does ("it will be overwritten")."""
    key_file, identity = reviewer
    existing = tmp_path / "existing"
    existing.write_bytes(b"earlier work" * 100_000)  # longer than what replaces it
    ok(cli("encrypt", "-r", identity.recipient, "-o", existing, input=STATEMENT))
    sealed = existing.read_bytes()
    assert crypto.unseal_bytes(sealed, [identity]) == STATEMENT
    opened = tmp_path / "opened"
    opened.write_bytes(b"earlier work" * 100_000)
    opened.chmod(0o640)
    ok(cli("decrypt", "-i", key_file, "-o", opened, input=sealed))
    assert opened.read_bytes() == STATEMENT
    assert stat.S_IMODE(opened.stat().st_mode) == 0o640  # age keeps the file's mode
    fresh = tmp_path / "fresh"
    ok(cli("decrypt", "-i", key_file, "-o", fresh, input=sealed))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    fresh.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "opened", "reviewer.txt"]


def test_failed_decrypt_keeps_the_earlier_output(
    tmp_path: Path, reviewer: tuple[Path, X25519Identity]
) -> None:
    key_file, identity = reviewer
    data = os.urandom(3 * CHUNK + 10)  # chunks are released before the altered last one
    sealed = crypto.seal_bytes(data, [identity.recipient])
    altered = sealed[:-5] + bytes([sealed[-5] ^ 1]) + sealed[-4:]
    existing = tmp_path / "opened.bin"
    existing.write_bytes(b"earlier work")
    failed(cli("decrypt", "-i", key_file, "-o", existing, input=altered), "chunk")
    assert existing.read_bytes() == b"earlier work"
    stranger, _ = identity_file(tmp_path, "stranger.txt")
    failed(cli("decrypt", "-i", stranger, "-o", existing, input=sealed))
    assert existing.read_bytes() == b"earlier work"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "opened.bin",
        "reviewer.txt",
        "stranger.txt",
    ]


def test_output_through_a_symlink_replaces_its_target(
    tmp_path: Path, reviewer: tuple[Path, X25519Identity]
) -> None:
    key_file, identity = reviewer
    target = tmp_path / "target.bin"
    target.write_bytes(b"earlier work")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    sealed = crypto.seal_bytes(STATEMENT, [identity.recipient])
    ok(cli("decrypt", "-i", key_file, "-o", link, input=sealed))
    assert link.is_symlink()
    assert target.read_bytes() == STATEMENT


def test_output_same_as_input_is_refused(
    tmp_path: Path, reviewer: tuple[Path, X25519Identity]
) -> None:
    _, identity = reviewer
    source = tmp_path / "statement.txt"
    source.write_bytes(STATEMENT)
    failed(cli("encrypt", "-r", identity.recipient, "-o", source, source), "are the same")
    assert source.read_bytes() == STATEMENT


def test_output_into_a_missing_folder_fails_cleanly(
    tmp_path: Path, reviewer: tuple[Path, X25519Identity]
) -> None:
    _, identity = reviewer
    out = tmp_path / "absent" / "item.age"
    failed(cli("encrypt", "-r", identity.recipient, "-o", out, input=STATEMENT), "cannot create")
    failed(cli("encrypt", "-r", identity.recipient, "-o", tmp_path, input=STATEMENT), "cannot")


def test_output_to_a_fifo_is_written_directly(
    tmp_path: Path, reviewer: tuple[Path, X25519Identity]
) -> None:
    key_file, identity = reviewer
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    source = tmp_path / "item.age"
    source.write_bytes(crypto.seal_bytes(STATEMENT, [identity.recipient]))
    command = ["decrypt", "-i", str(key_file), "-o", str(fifo), str(source)]
    proc = subprocess.Popen([sys.executable, "-m", "crypto", *command], cwd=ROOT)
    try:
        with open(fifo, "rb") as reader:  # opening waits for the writer, and it for us
            received = reader.read()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert received == STATEMENT
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the FIFO, nothing renamed over it


def test_passphrase_from_the_environment(tmp_path: Path) -> None:
    env = {PASSPHRASE_VAR: PASSPHRASE}
    sealed = tmp_path / "wrapped.age"
    ok(
        cli(
            "encrypt",
            "-p",
            "--passphrase-env",
            PASSPHRASE_VAR,
            "-o",
            sealed,
            input=STATEMENT,
            env=env,
        )
    )
    assert b"\n-> scrypt " in sealed.read_bytes()
    assert (
        ok(cli("decrypt", "--passphrase-env", PASSPHRASE_VAR, sealed, env=env)).stdout == STATEMENT
    )


def test_wrong_or_missing_passphrase(tmp_path: Path) -> None:
    sealed = fast_passphrase_item(STATEMENT)
    wrong = cli(
        "decrypt",
        "--passphrase-env",
        PASSPHRASE_VAR,
        input=sealed,
        env={PASSPHRASE_VAR: PASSPHRASE + "!"},
    )
    failed(wrong, "no identity matched")
    assert wrong.stdout == b""
    failed(
        cli("decrypt", "--passphrase-env", PASSPHRASE_VAR, input=sealed), PASSPHRASE_VAR, "empty"
    )
    failed(
        cli("encrypt", "-p", "--passphrase-env", PASSPHRASE_VAR, input=STATEMENT),
        PASSPHRASE_VAR,
        "empty",
    )


def test_armored_passphrase_item() -> None:
    env = {PASSPHRASE_VAR: PASSPHRASE}
    armored = fast_passphrase_item(STATEMENT, armor=True)
    assert (
        ok(cli("decrypt", "--passphrase-env", PASSPHRASE_VAR, input=armored, env=env)).stdout
        == STATEMENT
    )


def test_passphrase_is_never_read_from_the_data(tmp_path: Path) -> None:
    """Without a terminal, -p must fail, not take a passphrase from the input lines."""
    lines = b"first line of the statement\n" * 3
    result = cli("encrypt", "-p", input=lines)
    failed(result, "terminal")
    assert result.stdout == b""
    failed(cli("decrypt", input=fast_passphrase_item(STATEMENT)), "terminal")


def test_passphrase_typed_at_the_terminal(tmp_path: Path) -> None:
    source = tmp_path / "statement.txt"
    source.write_bytes(STATEMENT)
    sealed = tmp_path / "wrapped.age"
    status, transcript, stderr = run_with_terminal(
        [sys.executable, "-m", "crypto", "encrypt", "-p", "-o", str(sealed), str(source)],
        [(b"Passphrase:", PASSPHRASE), (b"Confirm passphrase:", PASSPHRASE)],
    )
    assert status == 0, stderr
    assert PASSPHRASE.encode() not in transcript  # not echoed
    out = tmp_path / "opened.txt"
    status, _, stderr = run_with_terminal(
        [sys.executable, "-m", "crypto", "decrypt", "-o", str(out), str(sealed)],
        [(b"Passphrase:", PASSPHRASE)],
    )
    assert status == 0, stderr
    assert out.read_bytes() == STATEMENT
    # Two different answers at the prompts seal nothing.
    refused = tmp_path / "refused.age"
    status, _, stderr = run_with_terminal(
        [sys.executable, "-m", "crypto", "encrypt", "-p", "-o", str(refused), str(source)],
        [(b"Passphrase:", PASSPHRASE), (b"Confirm passphrase:", PASSPHRASE + "?")],
    )
    assert status != 0 and b"do not match" in stderr
    assert not refused.exists()


def test_binary_output_to_a_terminal_is_refused(reviewer: tuple[Path, X25519Identity]) -> None:
    _, identity = reviewer
    status, transcript, stderr = run_with_terminal(
        [
            sys.executable,
            "-m",
            "crypto",
            "encrypt",
            "-r",
            str(identity.recipient),
            str(ROOT / "pyproject.toml"),
        ],
        [],
        stdout_to_terminal=True,
    )
    assert status != 0
    assert b"terminal" in transcript + stderr
    assert b"age-encryption.org" not in transcript


# --- failures -----------------------------------------------------------------------------


def test_wrong_key(tmp_path: Path, reviewer: tuple[Path, X25519Identity]) -> None:
    _, identity = reviewer
    stranger, _ = identity_file(tmp_path, "stranger.txt")
    sealed = crypto.seal_bytes(STATEMENT, [identity.recipient])
    result = cli("decrypt", "-i", stranger, input=sealed)
    failed(result, "no identity matched")
    assert result.stdout == b""


def _other_base64_char(sealed: bytearray, index: int) -> None:
    sealed[index] = ord("B") if sealed[index] == ord("A") else ord("A")


@pytest.mark.parametrize(
    ("part", "words"),
    [
        ("version line", ["not an age file"]),
        ("recipient stanza", ["no identity matched"]),
        ("header MAC", ["header MAC"]),
        ("first chunk", ["payload", "chunk 0"]),
        ("last tag", ["payload", "chunk 2"]),
    ],
)
def test_corrupted_item(reviewer: tuple[Path, X25519Identity], part: str, words: list[str]) -> None:
    key_file, identity = reviewer
    sealed = bytearray(crypto.seal_bytes(STATEMENT, [identity.recipient]))
    header_size = len(crypto.read_header(io.BytesIO(bytes(sealed)))[0].marshal())
    if part == "version line":
        sealed[5] ^= 0x04
    elif part == "recipient stanza":
        _other_base64_char(sealed, sealed.index(b"\n", 30) + 4)  # the wrapped file key
    elif part == "header MAC":
        _other_base64_char(sealed, header_size - 40)
    elif part == "first chunk":
        sealed[header_size + 16 + 100] ^= 0x04
    else:
        sealed[-1] ^= 0x04
    result = cli("decrypt", "-i", key_file, input=bytes(sealed))
    failed(result, *words)
    if part != "last tag":
        assert result.stdout == b""


def test_truncated_item(reviewer: tuple[Path, X25519Identity]) -> None:
    key_file, identity = reviewer
    sealed = crypto.seal_bytes(STATEMENT, [identity.recipient])
    failed(cli("decrypt", "-i", key_file, input=sealed[:-100]), "truncated")
    failed(cli("decrypt", "-i", key_file, input=sealed[:40]), "header")


def test_not_an_age_file(reviewer: tuple[Path, X25519Identity]) -> None:
    key_file, _ = reviewer
    failed(cli("decrypt", "-i", key_file, input=STATEMENT), "not an age file")


def test_missing_recipients() -> None:
    result = cli("encrypt", input=STATEMENT)
    failed(result, "missing recipients")
    assert result.stdout == b""


def test_passphrase_with_recipients_is_refused(reviewer: tuple[Path, X25519Identity]) -> None:
    _, identity = reviewer
    result = cli(
        "encrypt", "-p", "-r", identity.recipient, input=STATEMENT, env={PASSPHRASE_VAR: PASSPHRASE}
    )
    failed(result, "-p", "-r")
    assert result.stdout == b""


def test_unreadable_identity_file(tmp_path: Path) -> None:
    sealed = crypto.seal_bytes(STATEMENT, [X25519Identity.generate().recipient])
    missing = tmp_path / "absent.txt"
    failed(cli("decrypt", "-i", missing, input=sealed), "cannot read", str(missing))
    failed(cli("decrypt", "-i", tmp_path, input=sealed), "cannot read", str(tmp_path))
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("# a note\nthis is not a key\n")
    failed(cli("decrypt", "-i", garbage, input=sealed), "identity file line 2")


def test_garbage_recipient_string(tmp_path: Path) -> None:
    valid = str(X25519Identity.generate().recipient)
    damaged = valid[:-1] + ("q" if valid[-1] != "q" else "p")  # checksum no longer holds
    for text in ("hello", damaged, "age1"):
        result = cli("encrypt", "-r", text, input=STATEMENT)
        failed(result, "recipient")
        assert result.stdout == b""
    secret = str(X25519Identity.generate())
    line = failed(cli("encrypt", "-r", secret, input=STATEMENT), "recipient")
    assert secret not in line  # a secret key pasted by mistake is not echoed
    recipients_file = tmp_path / "reviewers.txt"
    recipients_file.write_text("%s\nnonsense\n" % valid)
    failed(cli("encrypt", "-R", recipients_file, input=STATEMENT), "recipients file line 2")


@pytest.mark.parametrize("damage", ["wrong key", "last chunk altered", "trailing data"])
def test_failed_decrypt_leaves_no_output_file(
    tmp_path: Path, reviewer: tuple[Path, X25519Identity], damage: str
) -> None:
    key_file, identity = reviewer
    data = os.urandom(3 * CHUNK + 10)  # several chunks: some are written before the failure
    sealed = crypto.seal_bytes(data, [identity.recipient])
    if damage == "wrong key":
        key_file, _ = identity_file(tmp_path, "stranger.txt")
    elif damage == "last chunk altered":
        sealed = sealed[:-5] + bytes([sealed[-5] ^ 1]) + sealed[-4:]
    else:
        sealed += b"\n"
    source = tmp_path / "item.age"
    source.write_bytes(sealed)
    out = tmp_path / "opened.bin"
    failed(cli("decrypt", "-i", key_file, "-o", out, source))
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"reviewer.txt", "item.age", key_file.name}
    )


# --- constant memory ----------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent("""
    import hashlib, json, os, resource, sys
    import crypto

    MiB = 1024 * 1024
    path, total = sys.argv[1], int(sys.argv[2])

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    def upload():
        for n in range(total // MiB):
            yield os.urandom(MiB - 1) + bytes([n % 256])  # a fresh 1 MiB object each time

    identity = crypto.X25519Identity.generate()
    baseline = peak()
    sealed_digest = hashlib.sha256()
    with open(path, "wb") as dst, crypto.seal(dst, [identity.recipient]) as writer:
        for block in upload():
            sealed_digest.update(block)
            writer.write(block)
    opened_digest, opened = hashlib.sha256(), 0
    with open(path, "rb") as src:
        reader = crypto.unseal(src, [identity])
        while block := reader.read(MiB):
            opened_digest.update(block)
            opened += len(block)
    print(json.dumps({"growth": peak() - baseline, "opened": opened,
                      "same": sealed_digest.digest() == opened_digest.digest()}))
""")


def test_streaming_stays_constant_memory(tmp_path: Path) -> None:
    total = 64 * MiB
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "big.age"), str(total)],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    report = json.loads(result.stdout)
    assert report["same"] and report["opened"] == total
    assert report["growth"] < 64 * MiB, "peak RSS grew by %.1f MiB" % (report["growth"] / MiB)
