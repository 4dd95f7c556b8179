"""crypto.read_identities reads identity files as ``age -i`` does; the CLI uses it."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import crypto
from crypto import HybridIdentity, KeyFormatError, X25519Identity
from crypto.keys import identity_file_text

from .conftest import ROOT


@pytest.fixture(scope="module")
def pair() -> tuple[X25519Identity, HybridIdentity]:
    return X25519Identity.generate(), HybridIdentity.generate()


def cli(*args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "crypto", *args],
        input=input,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )


def test_both_kinds_comments_and_blank_lines(
    tmp_path: Path, pair: tuple[X25519Identity, HybridIdentity]
) -> None:
    classic, hybrid = pair
    path = tmp_path / "keys.txt"
    path.write_text(
        identity_file_text(classic, classic.recipient)
        + "\n   \n# the hybrid one\r\n%s\r\n\n" % hybrid
    )
    found = crypto.read_identities(path)
    assert [type(i) for i in found] == [X25519Identity, HybridIdentity]
    assert [str(i) for i in found] == [str(classic), str(hybrid)]
    assert [str(i) for i in crypto.read_identities(str(path))] == [str(classic), str(hybrid)]
    # Each identity gives its recipient, so a file's identities can seal as well.
    assert [str(i.recipient) for i in found] == [str(classic.recipient), str(hybrid.recipient)]


def test_errors_name_the_line_never_the_key(
    tmp_path: Path, pair: tuple[X25519Identity, HybridIdentity]
) -> None:
    classic, hybrid = pair
    damaged = str(hybrid)[:-3] + ("QQQ" if not str(hybrid).endswith("QQQ") else "PPP")
    path = tmp_path / "keys.txt"
    path.write_text("# reviewer\n\n%s\n%s\n" % (classic, damaged))
    with pytest.raises(KeyFormatError) as caught:
        crypto.read_identities(path)
    message = str(caught.value)
    assert "line 4" in message and str(path) in message
    assert damaged[20:40] not in message and str(classic)[20:40] not in message
    path.write_text("%s\n%s\n" % (classic, classic.recipient))
    with pytest.raises(KeyFormatError, match="line 2: apparent recipient"):
        crypto.read_identities(path)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "no identities"),
        (b"# only a comment\n\n", "no identities"),
        (b"\xff\xfe AGE-SECRET-KEY-1\n", "not valid UTF-8"),
        (b"age-encryption.org/v1\n-> scrypt x 18\n", "encrypted identity file"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "encrypted identity file"),
    ],
)
def test_files_that_hold_no_usable_identity(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "keys.txt"
    path.write_bytes(content)
    with pytest.raises(KeyFormatError, match=words):
        crypto.read_identities(path)


def test_unreadable_files_raise_the_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        crypto.read_identities(tmp_path / "absent.txt")
    with pytest.raises(IsADirectoryError):
        crypto.read_identities(tmp_path)


def test_dash_reads_standard_input(pair: tuple[X25519Identity, HybridIdentity]) -> None:
    classic, hybrid = pair
    text = "# keys\n%s\n%s\n" % (hybrid, classic)
    found = crypto.read_identities("-", stdin=io.BytesIO(text.encode()))
    assert [type(i) for i in found] == [HybridIdentity, X25519Identity]
    with pytest.raises(KeyFormatError, match="standard input: identity file line 1"):
        crypto.read_identities("-", stdin=io.BytesIO(b"nonsense\n"))


def test_cli_identity_from_standard_input(
    tmp_path: Path, pair: tuple[X25519Identity, HybridIdentity]
) -> None:
    classic, hybrid = pair
    sealed = tmp_path / "item.age"
    sealed.write_bytes(crypto.seal_bytes(b"invented statement", [hybrid.recipient]))
    keys = ("# keys\n\n%s\n%s\n" % (classic, hybrid)).encode()
    result = cli("decrypt", "-i", "-", str(sealed), input=keys)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"invented statement"
    # The input on standard input too: refused, as age refuses it.
    result = cli("decrypt", "-i", "-", input=sealed.read_bytes())
    assert result.returncode == 1
    assert b"standard input is used for multiple purposes" in result.stderr
    # keygen -y - prints the recipients of identities read from standard input.
    result = cli("keygen", "-y", "-", input=keys)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [str(classic.recipient), str(hybrid.recipient)]


def test_cli_decrypt_error_names_the_line(
    tmp_path: Path, pair: tuple[X25519Identity, HybridIdentity]
) -> None:
    classic, _ = pair
    sealed = tmp_path / "item.age"
    sealed.write_bytes(crypto.seal_bytes(b"x", [classic.recipient]))
    bad = tmp_path / "bad.txt"
    secret_looking = "AGE-SECRET-KEY-1" + "Q" * 20
    bad.write_text("# c\n\n%s\n" % secret_looking)
    result = cli("decrypt", "-i", str(bad), str(sealed))
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "line 3" in err and secret_looking not in err
    age = shutil.which("age")
    if age:
        # age numbers the same line the same way.
        reference = subprocess.run(
            [age, "-d", "-i", str(bad), str(sealed)], capture_output=True, timeout=60
        )
        assert reference.returncode != 0
        assert re.search(rb"line 3\b", reference.stderr)


def test_identity_file_written_by_age_keygen(tmp_path: Path) -> None:
    keygen = shutil.which("age-keygen")
    if not keygen:
        pytest.skip("the reference `age-keygen` tool is not installed")
    path = tmp_path / "reviewer.txt"
    subprocess.run([keygen, "-o", str(path)], check=True, capture_output=True, timeout=60)
    (identity,) = crypto.read_identities(path)
    public = subprocess.run(
        [keygen, "-y", str(path)], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    assert str(identity.recipient) == public.strip()
