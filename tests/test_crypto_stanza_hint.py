"""Which stanza opened an item, and trying that one first next time (first_stanza)."""

from __future__ import annotations

import io
import os
import tempfile

import pytest

import crypto
from crypto import (
    HeaderError,
    HeaderMACError,
    HybridIdentity,
    NoIdentityMatchError,
    PayloadError,
    X25519Identity,
)

DATA = os.urandom(70_000)


@pytest.fixture(scope="module")
def hybrids() -> list[HybridIdentity]:
    return [HybridIdentity.generate() for _ in range(4)]


@pytest.fixture(scope="module")
def sealed(hybrids: list[HybridIdentity]) -> bytes:
    return crypto.seal_bytes(DATA, [h.recipient for h in hybrids])


@pytest.fixture
def decapsulations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts ML-KEM decapsulations: what a trial unwrap of a hybrid stanza costs."""
    calls: list[int] = []
    original = HybridIdentity._shared_secret

    def counting(self: HybridIdentity, enc: bytes) -> bytes:
        calls.append(1)
        return original(self, enc)

    monkeypatch.setattr(HybridIdentity, "_shared_secret", counting)
    return calls


def test_matching_stanza_finds_each_recipient(hybrids: list[HybridIdentity], sealed: bytes) -> None:
    header, _ = crypto.read_header(io.BytesIO(sealed))
    for index, identity in enumerate(hybrids):
        assert crypto.matching_stanza(sealed, [identity]) == index
        assert crypto.matching_stanza(header, [identity]) == index
        assert crypto.matching_stanza(io.BytesIO(sealed), [identity]) == index
    assert crypto.matching_stanza(sealed, [HybridIdentity.generate()]) is None
    armored = crypto.seal_bytes(DATA, [h.recipient for h in hybrids], armor=True)
    assert crypto.matching_stanza(armored, [hybrids[2]]) == 2
    # Several identities: the first that opens, as unseal tries them.
    assert crypto.matching_stanza(sealed, [HybridIdentity.generate(), hybrids[3]]) == 3


def test_matching_stanza_fails_as_unsealing_does(
    hybrids: list[HybridIdentity], sealed: bytes
) -> None:
    with pytest.raises(HeaderError):
        crypto.matching_stanza(b"not an age file\n", [hybrids[0]])
    header, _ = crypto.read_header(io.BytesIO(sealed))
    altered = crypto.Header(stanzas=header.stanzas, mac=bytes(32), raw=header.raw)
    with pytest.raises(HeaderMACError):
        crypto.matching_stanza(altered, [hybrids[1]])


def test_the_reader_says_which_stanza_opened(hybrids: list[HybridIdentity], sealed: bytes) -> None:
    for index, identity in enumerate(hybrids):
        reader = crypto.unseal(io.BytesIO(sealed), [identity])
        assert reader.stanza_index == index
        assert reader.readall() == DATA


def test_a_right_hint_skips_the_trial_unwraps(
    hybrids: list[HybridIdentity], sealed: bytes, decapsulations: list[int]
) -> None:
    assert crypto.unseal_bytes(sealed, [hybrids[3]]) == DATA
    assert len(decapsulations) == 4  # stanzas 0, 1, 2 tried in vain
    decapsulations.clear()
    assert crypto.unseal_bytes(sealed, [hybrids[3]], first_stanza=3) == DATA
    assert len(decapsulations) == 1
    decapsulations.clear()
    reader = crypto.unseal(io.BytesIO(sealed), [hybrids[2]], first_stanza=2)
    assert reader.readall() == DATA and reader.stanza_index == 2
    assert len(decapsulations) == 1
    decapsulations.clear()
    header, _ = crypto.read_header(io.BytesIO(sealed))
    assert crypto.unwrap_file_key(header, [hybrids[1]], first_stanza=1)
    assert len(decapsulations) == 1


@pytest.mark.parametrize("hint", [None, -1, 0, 1, 2, 3, 4, 99])
def test_any_hint_gives_the_same_outcome(
    hybrids: list[HybridIdentity], sealed: bytes, hint: int | None
) -> None:
    for identity in hybrids:
        assert crypto.unseal_bytes(sealed, [identity], first_stanza=hint) == DATA
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(sealed, [HybridIdentity.generate()], first_stanza=hint)
    # A wrong hint costs one extra trial, never a failure: the rest are still tried.
    assert crypto.matching_stanza(sealed, [hybrids[0]], first_stanza=hint) == 0


def test_a_wrong_hint_still_tries_every_stanza(
    hybrids: list[HybridIdentity], sealed: bytes, decapsulations: list[int]
) -> None:
    assert crypto.unseal_bytes(sealed, [hybrids[0]], first_stanza=3) == DATA
    assert len(decapsulations) == 2  # the hinted stanza 3, then stanza 0


def test_hint_and_scrypt_rules() -> None:
    """A passphrase item has one stanza; a hint does not bypass the scrypt rules."""
    sealed = crypto.seal_bytes(b"x", [crypto.ScryptRecipient("p", work_factor=2)])
    assert crypto.unseal_bytes(sealed, [crypto.ScryptIdentity("p")], first_stanza=0) == b"x"
    header, _ = crypto.read_header(io.BytesIO(sealed))
    other = X25519Identity.generate()
    doubled = crypto.Header(
        stanzas=header.stanzas + other.recipient.wrap(bytes(16)), mac=header.mac, raw=header.raw
    )
    with pytest.raises(HeaderError, match="only stanza"):
        crypto.unwrap_file_key(doubled, [crypto.ScryptIdentity("p")], first_stanza=0)


def test_replaces_store_open_sealed(hybrids: list[HybridIdentity], sealed: bytes) -> None:
    """What store.blobs.open_sealed does with crypto internals, the public API does."""
    from store.blobs import open_sealed

    for index, identity in enumerate(hybrids):
        for hint in (None, 0, index, 3, 7):
            assert crypto.unseal_bytes(
                sealed, [identity], armor=False, first_stanza=hint
            ) == open_sealed(sealed, identity, hint)


def test_bare_stream_round_trip_and_tamper() -> None:
    key = os.urandom(32)
    with tempfile.TemporaryFile() as scratch:
        writer = crypto.stream_writer(scratch, key)
        writer.write(DATA)
        writer.close()
        scratch.seek(0)
        assert crypto.stream_reader(scratch, key).readall() == DATA
        scratch.seek(100)
        scratch.write(b"\x00")
        scratch.seek(0)
        with pytest.raises(PayloadError):
            crypto.stream_reader(scratch, key).readall()
    with pytest.raises(PayloadError):
        crypto.stream_reader(io.BytesIO(b""), key).readall()
