"""Key-type facts live in crypto: kinds, stanza types, strength, and the refusal to seal
one item to post-quantum and classic recipients together (as age refuses it)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import crypto
import crypto.keys
from crypto import (
    AgeError,
    HybridIdentity,
    HybridRecipient,
    KeyFormatError,
    MixedRecipientsError,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
)

from .conftest import ROOT

AGE_MIXED_MESSAGE = (
    "incompatible recipients: can't mix post-quantum and classic recipients, "
    "or the file would be vulnerable to quantum computers"
)


@pytest.fixture(scope="module")
def hybrid() -> HybridIdentity:
    return HybridIdentity.generate()


@pytest.fixture(scope="module")
def classic() -> X25519Identity:
    return X25519Identity.generate()


def _types(sealed: bytes) -> list[str]:
    header, _ = crypto.read_header(io.BytesIO(sealed))
    return [s.type for s in header.stanzas]


# --- kinds and stanza types ----------------------------------------------------------------


def test_key_kind_of_every_key_string(hybrid: HybridIdentity, classic: X25519Identity) -> None:
    assert crypto.key_kind(str(classic)) == "x25519"
    assert crypto.key_kind(str(classic.recipient)) == "x25519"
    assert crypto.key_kind(str(hybrid)) == "mlkem768x25519"
    assert crypto.key_kind(str(hybrid.recipient)) == "mlkem768x25519"
    # Whitespace around a pasted key, and a lowercase identity, as age-keygen -y takes.
    assert crypto.key_kind("  %s\n" % hybrid.recipient) == "mlkem768x25519"
    assert crypto.key_kind(str(classic).lower()) == "x25519"
    assert crypto.key_kind(str(hybrid).lower()) == "mlkem768x25519"


@pytest.mark.parametrize(
    "text", ["", "hello", "age", "AGE-SECRET-KEY-", "ssh-ed25519 AAAA", "AGE-PLUGIN-YUBIKEY-1X"]
)
def test_key_kind_refuses_unknown_strings(text: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        crypto.key_kind(text)
    assert isinstance(caught.value, AgeError)


def test_key_kind_error_does_not_echo_the_key() -> None:
    secret = "AGE-SECRET-KEX-1" + "Q" * 58  # a mistyped secret key
    with pytest.raises(KeyFormatError) as caught:
        crypto.key_kind(secret)
    assert "Q" * 8 not in str(caught.value)


def test_stanza_type_matches_what_is_written(
    hybrid: HybridIdentity, classic: X25519Identity
) -> None:
    for identity in (classic, hybrid):
        recipient = identity.recipient
        written = recipient.wrap(bytes(16))[0].type
        assert crypto.stanza_type(recipient) == written
        assert crypto.stanza_type(identity) == written
        assert crypto.stanza_type(str(recipient)) == written
        assert crypto.stanza_type(str(identity)) == written
        assert crypto.stanza_type(crypto.key_kind(str(recipient))) == written
    assert crypto.stanza_type("x25519") == "X25519"
    assert crypto.stanza_type("mlkem768x25519") == "mlkem768x25519"
    assert crypto.stanza_type(ScryptRecipient("p", work_factor=2)) == "scrypt"
    with pytest.raises(KeyFormatError):
        crypto.stanza_type("nonsense")
    with pytest.raises(KeyFormatError):
        crypto.stanza_type(object())


def test_the_registry_describes_every_key_type() -> None:
    kinds = {kt.kind: kt for kt in crypto.key_types()}
    assert set(kinds) == {"x25519", "mlkem768x25519", "scrypt"}
    assert kinds["x25519"].recipient_prefix == "age1"
    assert kinds["x25519"].identity_prefix == "AGE-SECRET-KEY-1"
    assert kinds["mlkem768x25519"].recipient_prefix == "age1pq1"
    assert kinds["mlkem768x25519"].identity_prefix == "AGE-SECRET-KEY-PQ-1"
    assert kinds["mlkem768x25519"].recipient_class is HybridRecipient
    assert kinds["mlkem768x25519"].identity_class is HybridIdentity
    assert kinds["x25519"].recipient_class is X25519Recipient
    assert kinds["scrypt"].identity_class is ScryptIdentity
    assert [kt.kind for kt in crypto.key_types() if kt.post_quantum] == ["mlkem768x25519"]
    assert crypto.key_type("age1pq1whatever") is kinds["mlkem768x25519"]
    doc = crypto.keys.__doc__ or ""
    for fact in ("age1…", "AGE-SECRET-KEY-1…", "age1pq1…", "AGE-SECRET-KEY-PQ-1…", "scrypt"):
        assert fact in doc, fact
    for kt in crypto.key_types():
        assert "``%s``" % kt.kind in doc


def test_post_quantum_on_every_recipient_and_identity(
    hybrid: HybridIdentity, classic: X25519Identity
) -> None:
    assert hybrid.post_quantum is True and hybrid.recipient.post_quantum is True
    assert classic.post_quantum is False and classic.recipient.post_quantum is False
    assert ScryptRecipient("p").post_quantum is False
    assert ScryptIdentity("p").post_quantum is False
    assert HybridRecipient.post_quantum is True and X25519Recipient.post_quantum is False
    assert crypto.is_post_quantum(str(hybrid.recipient))
    assert not crypto.is_post_quantum("x25519")


def test_every_identity_gives_its_recipient(
    hybrid: HybridIdentity, classic: X25519Identity
) -> None:
    for identity in (classic, hybrid, ScryptIdentity("invented passphrase")):
        recipient = identity.recipient
        sealed = crypto.seal_bytes(b"statement", [recipient])
        assert crypto.unseal_bytes(sealed, [identity]) == b"statement"


# --- mixing post-quantum and classic recipients -------------------------------------------


def test_sealing_to_a_mix_is_refused(hybrid: HybridIdentity, classic: X25519Identity) -> None:
    mixed = [hybrid.recipient, classic.recipient]
    with pytest.raises(MixedRecipientsError) as caught:
        crypto.seal_bytes(b"x", mixed)
    assert str(caught.value) == AGE_MIXED_MESSAGE
    assert isinstance(caught.value, AgeError)
    out = io.BytesIO()
    with pytest.raises(MixedRecipientsError):
        crypto.seal(out, list(reversed(mixed)))
    assert out.getvalue() == b""  # refused before anything was written
    # Only one kind: fine.
    both_hybrid = [hybrid.recipient, HybridIdentity.generate().recipient]
    assert _types(crypto.seal_bytes(b"x", both_hybrid)) == ["mlkem768x25519"] * 2
    both_classic = [classic.recipient, X25519Identity.generate().recipient]
    assert _types(crypto.seal_bytes(b"x", both_classic)) == ["X25519"] * 2


def test_allow_mixed_opts_in(hybrid: HybridIdentity, classic: X25519Identity) -> None:
    sealed = crypto.seal_bytes(b"x", [hybrid.recipient, classic.recipient], allow_mixed=True)
    assert _types(sealed) == ["mlkem768x25519", "X25519"]
    out = io.BytesIO()
    with crypto.seal(out, [classic.recipient, hybrid.recipient], allow_mixed=True) as writer:
        writer.write(b"y")
    assert crypto.unseal_bytes(out.getvalue(), [hybrid]) == b"y"


def test_add_recipients_judges_existing_stanzas_and_new_ones(
    hybrid: HybridIdentity, classic: X25519Identity
) -> None:
    sealed = crypto.seal_bytes(b"x", [classic.recipient])
    header, _ = crypto.read_header(io.BytesIO(sealed))
    with pytest.raises(MixedRecipientsError):
        crypto.add_recipients(header, [classic], [hybrid.recipient])
    # Another classic recipient is fine.
    other = X25519Identity.generate()
    added = crypto.add_recipients(header, [classic], [other.recipient])
    assert [s.type for s in added.stanzas] == ["X25519", "X25519"]
    # And the other way round.
    pq_sealed = crypto.seal_bytes(b"x", [hybrid.recipient])
    pq_header, _ = crypto.read_header(io.BytesIO(pq_sealed))
    with pytest.raises(MixedRecipientsError):
        crypto.add_recipients(pq_header, [hybrid], [classic.recipient])
    # The transitional key upgrade asks for it.
    upgraded = crypto.add_recipients(header, [classic], [hybrid.recipient], allow_mixed=True)
    assert [s.type for s in upgraded.stanzas] == ["X25519", "mlkem768x25519"]


def test_set_recipients_refuses_a_mix(hybrid: HybridIdentity, classic: X25519Identity) -> None:
    sealed = crypto.seal_bytes(b"x", [classic.recipient])
    header, _ = crypto.read_header(io.BytesIO(sealed))
    with pytest.raises(MixedRecipientsError):
        crypto.set_recipients(header, [classic], [classic.recipient, hybrid.recipient])
    # Replacing classic stanzas with hybrid ones only is not a mix: the old ones go.
    moved = crypto.set_recipients(header, [classic], [hybrid.recipient])
    assert [s.type for s in moved.stanzas] == ["mlkem768x25519"]
    kept = crypto.set_recipients(
        header, [classic], [classic.recipient, hybrid.recipient], allow_mixed=True
    )
    assert [s.type for s in kept.stanzas] == ["X25519", "mlkem768x25519"]


def test_cli_encrypt_refuses_a_mix_like_age(
    tmp_path: Path, hybrid: HybridIdentity, classic: X25519Identity
) -> None:
    out = tmp_path / "item.age"
    recipients_file = tmp_path / "reviewers.txt"
    recipients_file.write_text("%s\n" % hybrid.recipient)
    for args in (
        ["-r", str(classic.recipient), "-r", str(hybrid.recipient)],
        ["-r", str(classic.recipient), "-R", str(recipients_file)],
    ):
        for output in ([], ["-o", str(out)]):
            result = subprocess.run(
                [sys.executable, "-m", "crypto", "encrypt", *args, *output],
                input=b"statement",
                capture_output=True,
                cwd=ROOT,
                timeout=60,
            )
            assert result.returncode == 1
            assert result.stdout == b""
            assert result.stderr.decode().strip() == "error: " + AGE_MIXED_MESSAGE
            assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviewers.txt"]
