"""Interoperability with the reference `age` tool, in both directions.

Invariant 3: a reviewer must be able to open any sealed item offline with `age`, and what
`age` seals must open here. Every case compares the plaintext byte for byte.
"""

from __future__ import annotations

import fcntl
import filecmp
import hashlib
import os
import random
import select
import shutil
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import crypto
from crypto import NoIdentityMatchError, ScryptIdentity, ScryptRecipient, X25519Identity
from crypto.armor import BEGIN, END
from crypto.keys import identity_file_text

from .conftest import ROOT

KiB = 1024
MiB = 1024 * KiB
CHUNK = 64 * KiB
# Empty input, one byte, exact multiples of the 64 KiB chunk and one byte either side.
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1]
PASSPHRASE = "пароль свидетеля: Кордай, февраль 2020"


def plaintext(size: int, seed: int = 0) -> bytes:
    """Invented content: a statement line, then pseudo-random bytes, cut to ``size``."""
    statement = "Свидетель: полиция задержала соседей у моста (seed %d).\n" % seed
    head = statement.encode("utf-8")
    return (head + random.Random(size * 7919 + seed).randbytes(size))[:size]


def run(
    argv: list[str],
    *,
    input: bytes | None = b"",
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        argv,
        input=input,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        env=env,
        start_new_session=True,
    )
    if check and result.returncode != 0:
        pytest.fail(
            "%s exited %d: %s"
            % (argv[:3], result.returncode, result.stderr.decode(errors="replace"))
        )
    return result


def run_cli(
    *args: str,
    input: bytes | None = b"",
    env_extra: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """``python -m crypto ARGS`` with the project's interpreter, from the repository root."""
    env = dict(os.environ)
    env.update(env_extra or {})
    return run([sys.executable, "-m", "crypto", *args], input=input, env=env, check=check)


def _make_controlling_terminal() -> None:
    # Runs in the child after setsid(): its stdin (the pty) becomes /dev/tty.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_with_terminal(
    argv: list[str],
    answers: list[tuple[bytes, str]],
    *,
    env: dict[str, str] | None = None,
    stdout_to_terminal: bool = False,
    timeout: float = 60,
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` with a fresh pseudo-terminal as its controlling terminal.

    ``answers`` are (prompt fragment, reply) pairs: each reply is typed once its prompt
    has appeared on the terminal. Returns (exit status, terminal transcript, stderr).
    """
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave if stdout_to_terminal else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=_make_controlling_terminal,
        )
    finally:
        os.close(slave)
    transcript = b""
    seen = 0
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("%s timed out; terminal so far: %r" % (argv[:3], transcript))
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the child closed its end of the terminal
                    data = b""
                if not data:
                    break
                transcript += data
                while pending and pending[0][0] in transcript[seen:]:
                    prompt, reply = pending.pop(0)
                    seen = transcript.index(prompt, seen) + len(prompt)
                    os.write(master, reply.encode("utf-8") + b"\n")
            elif proc.poll() is not None:
                break
        stderr = proc.stderr.read() if proc.stderr else b""
        status = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.stderr:
            proc.stderr.close()
    assert not pending, "never prompted for %r; terminal: %r" % (pending[0][0], transcript)
    return status, transcript, stderr


@dataclass
class Keys:
    keygen_file: Path  # written by age-keygen
    keygen_recipient: str
    ours: X25519Identity
    ours_file: Path  # written in age-keygen's layout by our code
    other: X25519Identity
    other_file: Path
    stranger_file: Path  # an age-keygen identity that is never a recipient


@pytest.fixture(scope="module")
def age_keygen() -> str:
    path = shutil.which("age-keygen")
    if not path:
        pytest.skip("the reference `age-keygen` tool is not installed (apt-get install age)")
    return path


@pytest.fixture(scope="module")
def keys(age_binary: str, age_keygen: str, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    keygen_file = folder / "reviewer-age-keygen.txt"
    run([age_keygen, "-o", str(keygen_file)])
    recipient = run([age_keygen, "-y", str(keygen_file)]).stdout.decode().strip()
    stranger_file = folder / "stranger.txt"
    run([age_keygen, "-o", str(stranger_file)])
    ours = X25519Identity.generate()
    other = X25519Identity.generate()
    ours_file = folder / "reviewer-ours.txt"
    other_file = folder / "recovery-ours.txt"
    ours_file.write_text(identity_file_text(ours, ours.recipient))
    other_file.write_text(identity_file_text(other, other.recipient))
    return Keys(keygen_file, recipient, ours, ours_file, other, other_file, stranger_file)


def age_decrypt(
    age: str, identity: Path, sealed: Path, *, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return run([age, "-d", "-i", str(identity), str(sealed)], check=check)


# --- ours seals, age opens ------------------------------------------------------------


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("size", SIZES)
def test_age_opens_what_we_seal(
    age_binary: str, keys: Keys, tmp_path: Path, size: int, armor: bool
) -> None:
    data = plaintext(size)
    sealed = tmp_path / "item.age"
    recipient = crypto.parse_recipient(keys.keygen_recipient)
    with sealed.open("wb") as dst, crypto.seal(dst, [recipient], armor=armor) as writer:
        # Uneven writes, as an upload arrives.
        for start in range(0, size, 10_000):
            writer.write(data[start : start + 10_000])
    if armor:
        assert sealed.read_bytes().startswith(BEGIN + b"\n")
    assert age_decrypt(age_binary, keys.keygen_file, sealed).stdout == data


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_age_opens_what_our_cli_seals(
    age_binary: str, keys: Keys, tmp_path: Path, armor: bool
) -> None:
    data = plaintext(CHUNK + 1, seed=3)
    source = tmp_path / "statement.txt"
    source.write_bytes(data)
    sealed = tmp_path / "statement.age"
    run_cli(
        "encrypt",
        "-r",
        keys.keygen_recipient,
        *(["-a"] if armor else []),
        "-o",
        str(sealed),
        str(source),
    )
    assert sealed.read_bytes().startswith(BEGIN if armor else b"age-encryption.org/v1\n")
    assert age_decrypt(age_binary, keys.keygen_file, sealed).stdout == data


def test_age_opens_our_item_with_several_recipients(
    age_binary: str, keys: Keys, tmp_path: Path
) -> None:
    data = plaintext(2 * CHUNK + 5, seed=4)
    recipients = [
        crypto.parse_recipient(keys.keygen_recipient),
        keys.ours.recipient,
        keys.other.recipient,
    ]
    sealed = tmp_path / "shared.age"
    sealed.write_bytes(crypto.seal_bytes(data, recipients))
    # age reads identities written by age-keygen and by our code alike.
    for identity in (keys.keygen_file, keys.ours_file, keys.other_file):
        assert age_decrypt(age_binary, identity, sealed).stdout == data
    refused = age_decrypt(age_binary, keys.stranger_file, sealed, check=False)
    assert refused.returncode != 0
    assert refused.stdout == b""


def test_age_opens_our_cli_item_with_recipient_file(
    age_binary: str, keys: Keys, tmp_path: Path
) -> None:
    data = plaintext(CHUNK, seed=5)
    recipients_file = tmp_path / "reviewers.txt"
    recipients_file.write_text(
        "# reviewers\n%s\n\n# recovery\n%s\n" % (keys.ours.recipient, keys.other.recipient)
    )
    sealed = run_cli(
        "encrypt", "-r", keys.keygen_recipient, "-R", str(recipients_file), input=data
    ).stdout
    path = tmp_path / "shared.age"
    path.write_bytes(sealed)
    for identity in (keys.keygen_file, keys.ours_file, keys.other_file):
        assert age_decrypt(age_binary, identity, path).stdout == data


# --- age seals, ours opens ------------------------------------------------------------


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("size", SIZES)
def test_we_open_what_age_seals(
    age_binary: str, keys: Keys, tmp_path: Path, size: int, armor: bool
) -> None:
    data = plaintext(size, seed=1)
    source = tmp_path / "statement.bin"
    source.write_bytes(data)
    sealed = tmp_path / "statement.age"
    run(
        [
            age_binary,
            "-e",
            "-r",
            str(keys.ours.recipient),
            *(["-a"] if armor else []),
            "-o",
            str(sealed),
            str(source),
        ]
    )
    # The Python API, streaming from the file, armor detected.
    with sealed.open("rb") as src:
        reader = crypto.unseal(src, [keys.ours])
        parts = []
        while block := reader.read(10_000):
            parts.append(block)
    assert b"".join(parts) == data
    # And python -m crypto.
    assert run_cli("decrypt", "-i", str(keys.ours_file), str(sealed)).stdout == data


def test_we_open_age_item_with_several_recipients(
    age_binary: str, keys: Keys, tmp_path: Path
) -> None:
    data = plaintext(CHUNK - 1, seed=6)
    recipients_file = tmp_path / "recovery.txt"
    recipients_file.write_text("# recovery key\n%s\n" % keys.other.recipient)
    sealed = tmp_path / "shared.age"
    run(
        [
            age_binary,
            "-e",
            "-r",
            keys.keygen_recipient,
            "-r",
            str(keys.ours.recipient),
            "-R",
            str(recipients_file),
            "-o",
            str(sealed),
        ],
        input=data,
    )
    raw = sealed.read_bytes()
    assert raw.count(b"\n-> X25519 ") == 3
    # An identity file written by age-keygen parses here and opens the item.
    keygen_identities = crypto.parse_identities_file(keys.keygen_file.read_text())
    assert crypto.unseal_bytes(raw, keygen_identities) == data
    assert crypto.unseal_bytes(raw, [keys.ours]) == data
    assert crypto.unseal_bytes(raw, [keys.other]) == data
    for identity_file in (keys.keygen_file, keys.ours_file, keys.other_file):
        assert run_cli("decrypt", "-i", str(identity_file), str(sealed)).stdout == data
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(raw, crypto.parse_identities_file(keys.stranger_file.read_text()))


# --- -o: one output path reused, and /dev/null, as with age ----------------------------

# Largest first: each item is shorter than the one it replaces, so a writer that did not
# truncate would leave the tail of the previous one behind.
SHRINKING = sorted(SIZES, reverse=True)


def test_our_cli_output_path_reused_across_sizes(
    age_binary: str, keys: Keys, tmp_path: Path
) -> None:
    sealed = tmp_path / "item.age"
    for size in SHRINKING:
        data = plaintext(size, seed=7)
        run_cli("encrypt", "-r", keys.keygen_recipient, "-o", str(sealed), input=data)
        # To stdout: age 1.1 leaves an existing -o file untouched when the plaintext is
        # empty (it opens the file on the first write).
        assert age_decrypt(age_binary, keys.keygen_file, sealed).stdout == data, size
    assert [p.name for p in tmp_path.iterdir()] == ["item.age"]


def test_age_output_path_reused_across_sizes(age_binary: str, keys: Keys, tmp_path: Path) -> None:
    sealed = tmp_path / "item.age"
    opened = tmp_path / "opened.bin"
    for size in SHRINKING:
        data = plaintext(size, seed=8)
        run([age_binary, "-e", "-r", str(keys.ours.recipient), "-o", str(sealed)], input=data)
        run_cli("decrypt", "-i", str(keys.ours_file), "-o", str(opened), str(sealed))
        assert opened.read_bytes() == data, size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item.age", "opened.bin"]


def test_output_to_dev_null_both_ways(age_binary: str, keys: Keys, tmp_path: Path) -> None:
    data = plaintext(2 * CHUNK + 3, seed=9)
    sealed = tmp_path / "item.age"
    sealed.write_bytes(crypto.seal_bytes(data, [keys.ours.recipient]))
    # What age does with -o /dev/null, we do too: succeed and write nothing visible.
    run([age_binary, "-d", "-i", str(keys.ours_file), "-o", os.devnull, str(sealed)])
    run([age_binary, "-e", "-r", str(keys.ours.recipient), "-o", os.devnull], input=data)
    run_cli("decrypt", "-i", str(keys.ours_file), "-o", os.devnull, str(sealed))
    run_cli("encrypt", "-r", keys.keygen_recipient, "-o", os.devnull, input=data)
    age_sealed = tmp_path / "age.age"
    run([age_binary, "-e", "-r", str(keys.ours.recipient), "-o", str(age_sealed)], input=data)
    run_cli("decrypt", "-i", str(keys.ours_file), "-o", os.devnull, str(age_sealed))
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)
    # A failure to /dev/null still fails.
    refused = run_cli(
        "decrypt", "-i", str(keys.other_file), "-o", os.devnull, str(sealed), check=False
    )
    assert refused.returncode != 0


def test_failed_decrypt_onto_an_existing_file_keeps_it(
    age_binary: str, keys: Keys, tmp_path: Path
) -> None:
    data = plaintext(3 * CHUNK + 11, seed=10)
    sealed = tmp_path / "item.age"
    run([age_binary, "-e", "-r", str(keys.ours.recipient), "-o", str(sealed)], input=data)
    raw = sealed.read_bytes()
    sealed.write_bytes(raw[:-5] + bytes([raw[-5] ^ 1]) + raw[-4:])  # the last chunk altered
    # age itself refuses it too.
    assert age_decrypt(age_binary, keys.ours_file, sealed, check=False).returncode != 0
    opened = tmp_path / "opened.bin"
    opened.write_bytes(b"the earlier, good copy")
    failed = run_cli(
        "decrypt", "-i", str(keys.ours_file), "-o", str(opened), str(sealed), check=False
    )
    assert failed.returncode != 0
    assert opened.read_bytes() == b"the earlier, good copy"  # no released plaintext in it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item.age", "opened.bin"]


# --- passphrases (age reads them from the terminal) -------------------------------------

ENTER = b"Enter passphrase"
CONFIRM = b"Confirm passphrase"


def age_passphrase_decrypt(age: str, sealed: Path, out: Path, passphrase: str) -> None:
    status, transcript, stderr = run_with_terminal(
        [age, "-d", "-o", str(out), str(sealed)], [(ENTER, passphrase)]
    )
    assert status == 0, (stderr, transcript)


def age_passphrase_encrypt(
    age: str, source: Path, sealed: Path, passphrase: str, armor: bool
) -> None:
    argv = [age, "-p", *(["-a"] if armor else []), "-o", str(sealed), str(source)]
    status, transcript, stderr = run_with_terminal(
        argv, [(ENTER, passphrase), (CONFIRM, passphrase)]
    )
    assert status == 0, (stderr, transcript)


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_age_opens_our_passphrase_item(age_binary: str, tmp_path: Path, armor: bool) -> None:
    data = plaintext(CHUNK + 3, seed=7)
    sealed = tmp_path / "wrapped.age"
    sealed.write_bytes(
        crypto.seal_bytes(data, [ScryptRecipient(PASSPHRASE, work_factor=10)], armor=armor)
    )
    out = tmp_path / "opened.bin"
    age_passphrase_decrypt(age_binary, sealed, out, PASSPHRASE)
    assert out.read_bytes() == data


def test_age_opens_our_cli_passphrase_item(age_binary: str, tmp_path: Path) -> None:
    data = plaintext(5000, seed=8)
    sealed = tmp_path / "wrapped.age"
    run_cli(
        "encrypt",
        "-p",
        "--passphrase-env",
        "TESTIMONY_TEST_PASSPHRASE",
        "-o",
        str(sealed),
        input=data,
        env_extra={"TESTIMONY_TEST_PASSPHRASE": PASSPHRASE},
    )
    out = tmp_path / "opened.bin"
    age_passphrase_decrypt(age_binary, sealed, out, PASSPHRASE)
    assert out.read_bytes() == data


def test_age_refuses_our_passphrase_item_with_wrong_passphrase(
    age_binary: str, tmp_path: Path
) -> None:
    sealed = tmp_path / "wrapped.age"
    sealed.write_bytes(
        crypto.seal_bytes(b"invented statement", [ScryptRecipient(PASSPHRASE, work_factor=10)])
    )
    out = tmp_path / "opened.bin"
    status, _, _ = run_with_terminal(
        [age_binary, "-d", "-o", str(out), str(sealed)], [(ENTER, "not the passphrase")]
    )
    assert status != 0
    assert not out.exists() or out.read_bytes() == b""


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_we_open_age_passphrase_item(age_binary: str, tmp_path: Path, armor: bool) -> None:
    data = plaintext(2 * CHUNK, seed=9)
    source = tmp_path / "statement.bin"
    source.write_bytes(data)
    sealed = tmp_path / "statement.age"
    age_passphrase_encrypt(age_binary, source, sealed, PASSPHRASE, armor)
    raw = sealed.read_bytes()
    assert raw.startswith(BEGIN) == armor
    opened = run_cli(
        "decrypt",
        "--passphrase-env",
        "TESTIMONY_TEST_PASSPHRASE",
        str(sealed),
        env_extra={"TESTIMONY_TEST_PASSPHRASE": PASSPHRASE},
    )
    assert opened.stdout == data
    if not armor:  # (the API reads armor the same way; each scrypt costs a second)
        assert crypto.unseal_bytes(raw, [ScryptIdentity(PASSPHRASE)]) == data


# --- armor details ----------------------------------------------------------------------


def test_armor_layout_matches_age(age_binary: str, keys: Keys, tmp_path: Path) -> None:
    """Both armor writers produce 64-column lines between the same begin and end lines."""
    data = plaintext(3 * CHUNK + 11, seed=10)
    source = tmp_path / "statement.bin"
    source.write_bytes(data)
    theirs = run([age_binary, "-e", "-a", "-r", str(keys.ours.recipient), str(source)]).stdout
    ours = crypto.seal_bytes(data, [keys.ours.recipient], armor=True)
    for text in (theirs, ours):
        lines = text.split(b"\n")
        assert lines[0] == BEGIN and lines[-2] == END and lines[-1] == b""
        body = lines[1:-2]
        assert all(len(line) == 64 for line in body[:-1])
        assert 0 < len(body[-1]) <= 64
    # Same plaintext length and recipient count: same armored length.
    assert len(theirs) == len(ours)
    assert crypto.unseal_bytes(theirs, [keys.ours]) == data


# --- a large file, streamed through files ---------------------------------------------


def _write_random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MiB):
            block = os.urandom(MiB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _payload_size(plain: int) -> int:
    chunks = max(1, -(-plain // CHUNK))
    return 16 + plain + 16 * chunks


@pytest.mark.slow
def test_hundred_mib_both_ways(age_binary: str, keys: Keys, tmp_path: Path) -> None:
    size = 100 * MiB  # also an exact multiple of the chunk size: a full final chunk
    plain = tmp_path / "video.bin"
    _write_random_file(plain, size)

    # Ours seals, age opens.
    sealed = tmp_path / "ours.age"
    recipient = crypto.parse_recipient(keys.keygen_recipient)
    with plain.open("rb") as src, sealed.open("wb") as dst:
        with crypto.seal(dst, [recipient]) as writer:
            header_size = len(writer.header.marshal())
            shutil.copyfileobj(src, writer, MiB)
    assert sealed.stat().st_size == header_size + _payload_size(size)
    opened = tmp_path / "opened-by-age.bin"
    run([age_binary, "-d", "-i", str(keys.keygen_file), "-o", str(opened), str(sealed)])
    assert opened.stat().st_size == size
    assert filecmp.cmp(plain, opened, shallow=False)
    sealed.unlink()
    opened.unlink()

    # age seals, ours opens.
    theirs = tmp_path / "theirs.age"
    run([age_binary, "-e", "-r", str(keys.ours.recipient), "-o", str(theirs), str(plain)])
    opened = tmp_path / "opened-by-us.bin"
    with theirs.open("rb") as src, opened.open("wb") as dst:
        shutil.copyfileobj(crypto.unseal(src, [keys.ours]), dst, MiB)
    assert opened.stat().st_size == size
    assert filecmp.cmp(plain, opened, shallow=False)


def test_age_refuses_our_item_when_altered(age_binary: str, keys: Keys, tmp_path: Path) -> None:
    """The tag we write is the one age checks: a flipped payload byte is caught there too."""
    data = plaintext(CHUNK + 100, seed=11)
    sealed = bytearray(crypto.seal_bytes(data, [crypto.parse_recipient(keys.keygen_recipient)]))
    sealed[-50] ^= 0x01
    path = tmp_path / "altered.age"
    path.write_bytes(bytes(sealed))
    result = age_decrypt(age_binary, keys.keygen_file, path, check=False)
    assert result.returncode != 0
    # age too releases at most the chunks that authenticated before the damage.
    assert len(result.stdout) < len(data) and data.startswith(result.stdout)
    identities = crypto.parse_identities_file(keys.keygen_file.read_text())
    with pytest.raises(crypto.PayloadError):
        crypto.unseal_bytes(bytes(sealed), identities)
