"""Hybrid post-quantum (mlkem768x25519) recipients: sealing, header rewrites, keys, CLI.

Interoperability with other age implementations is proven by the C2SP vectors
(tests/test_age_vectors.py); the Debian ``age`` tool predates this recipient type.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import crypto
from crypto import (
    HeaderError,
    HybridIdentity,
    HybridRecipient,
    KeyFormatError,
    NoIdentityMatchError,
    Stanza,
    X25519Identity,
    X25519Recipient,
    bech32,
)
from crypto.cli import main as cli_main
from crypto.format import b64encode
from crypto.mlkem768x25519 import ENC_SIZE, STANZA_TYPE

ROOT = Path(__file__).resolve().parent.parent

# The example key pair of C2SP age.md ("The MLKEM768-X25519 … recipient type").
SPEC_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
SPEC_RECIPIENT_SHA256 = "a091dd7e0ee9d62b75173dcc98441a0424baa941e66a8776e570a4ae60ff61ea"


@pytest.fixture(scope="module")
def hybrids() -> list[HybridIdentity]:
    return [HybridIdentity.generate() for _ in range(3)]


@pytest.fixture(scope="module")
def classics() -> list[X25519Identity]:
    return [X25519Identity.generate() for _ in range(2)]


def _types(sealed: bytes) -> list[str]:
    header, _ = crypto.read_header(io.BytesIO(sealed))
    return [s.type for s in header.stanzas]


def _payload(sealed: bytes) -> bytes:
    """Everything after the header: nonce and encrypted chunks."""
    header, _ = crypto.read_header(io.BytesIO(sealed))
    return sealed[len(header.marshal()) :]


# --- sealing ---------------------------------------------------------------------------


@pytest.mark.parametrize("armor", [False, True])
def test_round_trip_hybrid_recipients_only(hybrids: list[HybridIdentity], armor: bool) -> None:
    data = os.urandom(150_000)  # more than two 64 KiB chunks
    sealed = crypto.seal_bytes(data, [i.recipient for i in hybrids[:2]], armor=armor)
    for identity in hybrids[:2]:
        assert crypto.unseal_bytes(sealed, [identity]) == data
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(sealed, [hybrids[2]])
    if not armor:
        assert _types(sealed) == [STANZA_TYPE, STANZA_TYPE]


def test_streaming_round_trip(hybrids: list[HybridIdentity]) -> None:
    out = io.BytesIO()
    with crypto.seal(out, [hybrids[0].recipient]) as writer:
        for _ in range(5):
            writer.write(b"statement " * 10_000)
    out.seek(0)
    assert crypto.unseal(out, [hybrids[0]]).readall() == b"statement " * 50_000


def test_empty_plaintext(hybrids: list[HybridIdentity]) -> None:
    sealed = crypto.seal_bytes(b"", [hybrids[0].recipient])
    assert crypto.unseal_bytes(sealed, [hybrids[0]]) == b""


def test_each_stanza_is_fresh(hybrids: list[HybridIdentity]) -> None:
    first = hybrids[0].recipient.wrap(bytes(16))[0]
    second = hybrids[0].recipient.wrap(bytes(16))[0]
    assert first.args != second.args and first.body != second.body
    assert len(first.args) == 1 and len(first.body) == 32


def test_round_trip_mixed_with_x25519(
    hybrids: list[HybridIdentity], classics: list[X25519Identity]
) -> None:
    data = b"a statement" * 1000
    recipients = [hybrids[0].recipient, classics[0].recipient, hybrids[1].recipient]
    sealed = crypto.seal_bytes(data, recipients, allow_mixed=True)
    assert _types(sealed) == [STANZA_TYPE, "X25519", STANZA_TYPE]
    for identity in (hybrids[0], hybrids[1], classics[0]):
        assert crypto.unseal_bytes(sealed, [identity]) == data
    # Several identities of both kinds, only one of them a recipient.
    assert crypto.unseal_bytes(sealed, [classics[1], hybrids[2], hybrids[1]]) == data
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(sealed, [classics[1], hybrids[2]])
    # Why mixing gives up the post-quantum guarantee: the X25519 stanza alone, which a
    # quantum computer could open, yields the file key of the whole item.
    header, _ = crypto.read_header(io.BytesIO(sealed))
    x25519_only = [s for s in header.stanzas if s.type == "X25519"]
    assert classics[0].unwrap(x25519_only) == crypto.unwrap_file_key(header, [hybrids[0]])


def test_x25519_identity_ignores_hybrid_stanzas(
    hybrids: list[HybridIdentity], classics: list[X25519Identity]
) -> None:
    sealed = crypto.seal_bytes(b"x", [hybrids[0].recipient])
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(sealed, [classics[0]])


# --- header rewrite ----------------------------------------------------------------------


def _rewrite(sealed: bytes, header: crypto.Header) -> bytes:
    out = io.BytesIO()
    crypto.rewrite_recipients(io.BytesIO(sealed), out, header)
    return out.getvalue()


def test_header_rewrite_from_x25519_to_hybrid(
    hybrids: list[HybridIdentity], classics: list[X25519Identity]
) -> None:
    data = os.urandom(70_000)
    sealed = crypto.seal_bytes(data, [classics[0].recipient])
    header, _ = crypto.read_header(io.BytesIO(sealed))

    # Add a hybrid recipient; the X25519 one keeps access.
    added = _rewrite(
        sealed,
        crypto.add_recipients(header, [classics[0]], [hybrids[0].recipient], allow_mixed=True),
    )
    assert _types(added) == ["X25519", STANZA_TYPE]
    assert crypto.unseal_bytes(added, [hybrids[0]]) == data
    assert crypto.unseal_bytes(added, [classics[0]]) == data
    assert _payload(added) == _payload(sealed)

    # Drop the X25519 recipient, with the hybrid identity doing the rewrite.
    header, _ = crypto.read_header(io.BytesIO(added))
    dropped = _rewrite(
        added,
        crypto.set_recipients(header, [hybrids[0]], [hybrids[0].recipient, hybrids[1].recipient]),
    )
    assert _types(dropped) == [STANZA_TYPE, STANZA_TYPE]
    assert crypto.unseal_bytes(dropped, [hybrids[0]]) == data
    assert crypto.unseal_bytes(dropped, [hybrids[1]]) == data
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(dropped, [classics[0]])
    # The payload, and so the file key, is unchanged: copies recorded while the X25519
    # stanza was present stay only as strong as X25519 (see crypto.mlkem768x25519).
    assert _payload(dropped) == _payload(sealed)


def test_header_rewrite_needs_a_matching_identity(hybrids: list[HybridIdentity]) -> None:
    sealed = crypto.seal_bytes(b"x", [hybrids[0].recipient])
    header, _ = crypto.read_header(io.BytesIO(sealed))
    with pytest.raises(NoIdentityMatchError):
        crypto.add_recipients(header, [hybrids[1]], [hybrids[2].recipient])


# --- keys --------------------------------------------------------------------------------


def test_spec_example_key_pair() -> None:
    identity = crypto.parse_identity(SPEC_IDENTITY)
    assert isinstance(identity, HybridIdentity)
    recipient = str(identity.recipient)
    assert recipient.startswith("age1pq1") and len(recipient) == 1959
    assert hashlib.sha256(recipient.encode()).hexdigest() == SPEC_RECIPIENT_SHA256
    assert str(identity) == SPEC_IDENTITY


def test_key_strings_round_trip(hybrids: list[HybridIdentity]) -> None:
    identity = hybrids[0]
    text = str(identity)
    assert text.startswith("AGE-SECRET-KEY-PQ-1") and len(text) == 77
    parsed = crypto.parse_identity(text)
    assert isinstance(parsed, HybridIdentity) and parsed.seed == identity.seed
    assert parsed.recipient == identity.recipient
    assert hash(parsed.recipient) == hash(identity.recipient)

    recipient = crypto.parse_recipient(str(identity.recipient))
    assert isinstance(recipient, HybridRecipient)
    assert recipient == identity.recipient and str(recipient) == str(identity.recipient)
    assert recipient != hybrids[1].recipient
    assert len(recipient.public_bytes) == 1216
    assert "AGE-SECRET" not in repr(identity)


def test_both_key_types_in_files(
    hybrids: list[HybridIdentity], classics: list[X25519Identity]
) -> None:
    identities = crypto.parse_identities_file(
        "# reviewer keys\n%s\n\n%s\n" % (hybrids[0], classics[0])
    )
    assert [type(i) for i in identities] == [HybridIdentity, X25519Identity]
    recipients = crypto.parse_recipients_file(
        "%s\n# comment\n%s\n" % (classics[0].recipient, hybrids[0].recipient)
    )
    assert [type(r) for r in recipients] == [X25519Recipient, HybridRecipient]


def _hybrid_text(data: bytes) -> str:
    return bech32.encode("age1pq", data)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda r: r[:-1], "hybrid recipient"),
        (lambda r: r[:1000], "hybrid recipient"),
        (lambda r: r[:500] + ("q" if r[500] != "q" else "p") + r[501:], "checksum"),
        (lambda r: r[:8] + r[8:].upper(), "mixed case"),
        (lambda r: r + "b", "hybrid recipient"),
    ],
)
def test_malformed_recipient_strings(hybrids: list[HybridIdentity], mangle, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyFormatError, match=message):
        crypto.parse_recipient(mangle(str(hybrids[0].recipient)))


def test_malformed_recipient_contents(hybrids: list[HybridIdentity]) -> None:
    public = hybrids[0].recipient.public_bytes
    with pytest.raises(KeyFormatError, match="1216 bytes"):
        crypto.parse_recipient(_hybrid_text(public[:-1]))
    with pytest.raises(KeyFormatError, match="1216 bytes"):
        crypto.parse_recipient(_hybrid_text(bytes(32)))
    with pytest.raises(KeyFormatError, match="ML-KEM"):
        crypto.parse_recipient(_hybrid_text(b"\xff" * 1184 + public[1184:]))
    with pytest.raises(KeyFormatError, match="low-order"):
        crypto.parse_recipient(_hybrid_text(public[:1184] + bytes(32)))
    with pytest.raises(KeyFormatError, match="expected age1pq1"):
        HybridRecipient.parse(bech32.encode("age1xx", public))
    with pytest.raises(KeyFormatError, match="unknown recipient type"):
        crypto.parse_recipient("age2pq1" + str(hybrids[0].recipient)[7:])


def test_malformed_identities(hybrids: list[HybridIdentity]) -> None:
    text = str(hybrids[0])
    with pytest.raises(KeyFormatError, match="hybrid identity"):
        crypto.parse_identity(text[:-1])
    with pytest.raises(KeyFormatError, match="32 bytes"):
        crypto.parse_identity(bech32.encode("AGE-SECRET-KEY-PQ-", bytes(31)))
    with pytest.raises(KeyFormatError, match="AGE-SECRET-KEY-PQ-1"):
        crypto.parse_identity(text.lower())
    with pytest.raises(KeyFormatError, match="line 2"):
        crypto.parse_identities_file("# key\n%s\n" % text[:-3])


# --- stanza checks -------------------------------------------------------------------------


def test_unwrap_strictness(hybrids: list[HybridIdentity]) -> None:
    identity = hybrids[0]
    good = identity.recipient.wrap(bytes(range(16)))[0]
    assert identity.unwrap([Stanza("X25519", ["x"], b""), good]) == bytes(range(16))
    assert identity.unwrap([Stanza("other", [], b"")]) is None
    assert hybrids[1].unwrap([good]) is None
    with pytest.raises(HeaderError, match="one argument"):
        identity.unwrap([Stanza(STANZA_TYPE, good.args + ["extra"], good.body)])
    with pytest.raises(HeaderError, match="one argument"):
        identity.unwrap([Stanza(STANZA_TYPE, [], good.body)])
    with pytest.raises(HeaderError, match="%d bytes" % ENC_SIZE):
        identity.unwrap([Stanza(STANZA_TYPE, [b64encode(bytes(ENC_SIZE - 1))], good.body)])
    with pytest.raises(HeaderError, match="16 bytes"):
        identity.unwrap([Stanza(STANZA_TYPE, good.args, good.body + b"\x00")])
    with pytest.raises(HeaderError, match="low-order"):
        identity.unwrap([Stanza(STANZA_TYPE, [b64encode(bytes(ENC_SIZE))], good.body)])


# --- command line --------------------------------------------------------------------------


def test_cli_keygen_pq_encrypt_decrypt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "reviewer.key"
    assert cli_main(["keygen", "--pq", "-o", str(key)]) == 0
    public = capsys.readouterr().err.strip().removeprefix("Public key: ")
    assert public.startswith("age1pq1") and len(public) == 1959
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    lines = key.read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == "# public key: " + public
    assert lines[2].startswith("AGE-SECRET-KEY-PQ-1")

    assert cli_main(["keygen", "-y", str(key)]) == 0
    assert capsys.readouterr().out.strip() == public

    assert cli_main(["keygen", "--pq", "-o", str(key)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err

    plain = tmp_path / "statement.txt"
    plain.write_bytes(os.urandom(100_000))
    sealed = tmp_path / "statement.age"
    assert cli_main(["encrypt", "-r", public, "-o", str(sealed), str(plain)]) == 0
    assert _types(sealed.read_bytes()) == [STANZA_TYPE]
    opened = tmp_path / "statement.out"
    assert cli_main(["decrypt", "-i", str(key), "-o", str(opened), str(sealed)]) == 0
    assert opened.read_bytes() == plain.read_bytes()

    # A recipients file, armor, and stdin/stdout.
    recipients = tmp_path / "recipients.txt"
    recipients.write_text("# reviewer\n%s\n" % public)
    armored = io.BytesIO()
    assert (
        cli_main(
            ["encrypt", "-a", "-R", str(recipients)], stdin=io.BytesIO(b"note"), stdout=armored
        )
        == 0
    )
    assert armored.getvalue().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    out = io.BytesIO()
    assert (
        cli_main(["decrypt", "-i", str(key)], stdin=io.BytesIO(armored.getvalue()), stdout=out) == 0
    )
    assert out.getvalue() == b"note"


def test_cli_keygen_pq_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["keygen", "--pq"]) == 0
    text = capsys.readouterr().out
    identity = crypto.parse_identities_file(text)[0]
    assert isinstance(identity, HybridIdentity)
    assert "# public key: %s\n" % identity.recipient in text


def test_cli_rejects_a_damaged_recipient(
    hybrids: list[HybridIdentity], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = str(hybrids[0].recipient)[:-2]
    assert (
        cli_main(
            ["encrypt", "-r", damaged, "-o", str(tmp_path / "x.age")],
            stdin=io.BytesIO(b"x"),
            stdout=io.BytesIO(),
        )
        == 1
    )
    assert "invalid age hybrid recipient" in capsys.readouterr().err
    assert not (tmp_path / "x.age").exists()


def test_cli_as_a_program(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = [sys.executable, "-m", "crypto"]
    key = tmp_path / "k"
    subprocess.run(
        run + ["keygen", "--pq", "-o", str(key)], check=True, env=env, capture_output=True
    )
    public = subprocess.run(
        run + ["keygen", "-y", str(key)], check=True, env=env, capture_output=True, text=True
    ).stdout.strip()
    sealed = subprocess.run(
        run + ["encrypt", "-r", public],
        input=b"testimony",
        check=True,
        env=env,
        capture_output=True,
    ).stdout
    opened = subprocess.run(
        run + ["decrypt", "-i", str(key)], input=sealed, check=True, env=env, capture_output=True
    ).stdout
    assert opened == b"testimony"
