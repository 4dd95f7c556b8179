"""Properties of sealing that must hold for any content, any write pattern, any damage.

A sealed item either opens to exactly what was sealed, or fails with an AgeError: it never
opens to something shorter or different. Rewriting the recipients changes only the header.
"""

from __future__ import annotations

import base64
import gc
import io
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crypto
from crypto import (
    AgeError,
    NoIdentityMatchError,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
)
from crypto.armor import BEGIN, END

CHUNK = 64 * 1024
TAG = 16
NONCE = 16
PASSPHRASE = "invented passphrase: мост через Чу"

# Fixed for the whole run, so that replayed examples see the same keys.
IDENTITIES = [X25519Identity.generate() for _ in range(4)]

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.one_of(
    st.integers(0, 300),
    st.sampled_from(
        [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 3 * CHUNK]
    ),
    st.integers(0, 3 * CHUNK + 300),
)


@st.composite
def plaintexts(draw: st.DrawFn) -> bytes:
    size = draw(sizes)
    if size <= 64:
        return draw(st.binary(min_size=size, max_size=size))
    return random.Random(draw(st.integers(0, 2**32))).randbytes(size)


# Who an item is sealed to, and who then opens it.
KINDS = {
    "one reviewer": ([IDENTITIES[0].recipient], [IDENTITIES[0]]),
    "three reviewers, opened by the last": ([i.recipient for i in IDENTITIES[:3]], [IDENTITIES[2]]),
    "passphrase": ([ScryptRecipient(PASSPHRASE, work_factor=2)], [ScryptIdentity(PASSPHRASE)]),
}
kinds = st.sampled_from(sorted(KINDS))


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(c % (len(data) + 1) for c in cuts)
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def seal_in_pieces(
    data: bytes, cuts: list[int], kind: str, armor: bool = False
) -> tuple[bytes, int]:
    """The sealed item, and the length of its header (0 when armored)."""
    out = io.BytesIO()
    recipients, _ = KINDS[kind]
    with crypto.seal(out, recipients, armor=armor) as writer:
        for n, piece in enumerate(pieces(data, cuts)):
            # Writers receive bytes, bytearrays and memoryviews alike.
            writer.write([bytes, bytearray, memoryview][n % 3](piece))
        header_size = len(writer.header.marshal())
    return out.getvalue(), header_size


def read_to_end(
    sealed: bytes, identities: list[crypto.Identity], size: int = CHUNK, armor: bool | None = None
) -> bytes:
    reader = crypto.unseal(io.BytesIO(sealed), identities, armor=armor)
    parts = []
    while block := reader.read(size):
        parts.append(block)
    return b"".join(parts)


def expected_length(header_size: int, plain: int) -> int:
    chunks = max(1, -(-plain // CHUNK))
    return header_size + NONCE + plain + TAG * chunks


@settings(max_examples=120, **SETTINGS)
@given(
    data=plaintexts(),
    cuts=st.lists(st.integers(0, 4 * CHUNK), max_size=8),
    kind=kinds,
    read_size=st.sampled_from([1000, CHUNK - 1, CHUNK, CHUNK + 1, 10**6]),
)
def test_any_bytes_round_trip_under_any_split_of_writes(
    data: bytes, cuts: list[int], kind: str, read_size: int
) -> None:
    sealed, header_size = seal_in_pieces(data, cuts, kind)
    # The framing depends on the length only, never on how the writes were split.
    assert len(sealed) == expected_length(header_size, len(data))
    _, identities = KINDS[kind]
    assert read_to_end(sealed, identities, read_size) == data
    assert crypto.unseal_bytes(sealed, identities) == data


@settings(max_examples=250, **SETTINGS)
@given(
    data=plaintexts(),
    kind=kinds,
    region=st.sampled_from(["header", "nonce", "payload"]),
    where=st.integers(0, 2**32),
    bit=st.integers(0, 7),
)
def test_any_flipped_bit_is_refused(
    data: bytes, kind: str, region: str, where: int, bit: int
) -> None:
    sealed, header_size = seal_in_pieces(data, [], kind)
    start, end = {
        "header": (0, header_size),
        "nonce": (header_size, header_size + NONCE),
        "payload": (header_size + NONCE, len(sealed)),
    }[region]
    damaged = bytearray(sealed)
    damaged[start + where % (end - start)] ^= 1 << bit
    with pytest.raises(AgeError):
        read_to_end(bytes(damaged), KINDS[kind][1])


@settings(max_examples=120, **SETTINGS)
@given(data=plaintexts(), kind=kinds, where=st.integers(0, 2**32), bit=st.integers(0, 7))
def test_any_flipped_bit_in_armor_is_refused(data: bytes, kind: str, where: int, bit: int) -> None:
    sealed, _ = seal_in_pieces(data, [], kind, armor=True)
    damaged = bytearray(sealed)
    damaged[where % len(sealed)] ^= 1 << bit
    with pytest.raises(AgeError):
        read_to_end(bytes(damaged), KINDS[kind][1])


@settings(max_examples=150, **SETTINGS)
@given(data=plaintexts(), kind=kinds, armor=st.booleans(), where=st.integers(0, 2**32))
def test_any_truncation_is_refused(data: bytes, kind: str, armor: bool, where: int) -> None:
    sealed, _ = seal_in_pieces(data, [], kind, armor=armor)
    cut = where % len(sealed)
    if armor and cut == len(sealed) - 1:
        # Only the newline after the end line is gone: the item is whole.
        assert read_to_end(sealed[:cut], KINDS[kind][1]) == data
        return
    with pytest.raises(AgeError):
        read_to_end(sealed[:cut], KINDS[kind][1])


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1])
def test_cutting_at_every_chunk_boundary_is_refused(size: int) -> None:
    """Dropping whole trailing chunks leaves authentic chunks: the reader still refuses."""
    data = random.Random(size).randbytes(size)
    sealed, header_size = seal_in_pieces(data, [], "one reviewer")
    payload_start = header_size + NONCE
    for boundary in range(payload_start, len(sealed), CHUNK + TAG):
        with pytest.raises(crypto.PayloadError):
            read_to_end(sealed[:boundary], [IDENTITIES[0]])


def _released_before_failure(sealed: bytes, identities: list[crypto.Identity]) -> bytes:
    reader = crypto.unseal(io.BytesIO(sealed), identities)
    parts = []
    with pytest.raises(crypto.PayloadError):
        while block := reader.read(CHUNK):
            parts.append(block)
    return b"".join(parts)


@pytest.mark.parametrize("size", [16 * CHUNK, 16 * CHUNK + 1, 32 * CHUNK, 40 * CHUNK + 5])
def test_large_items_refuse_damage_in_any_chunk(size: int) -> None:
    """Items of a megabyte and more (read and written in batches) fail like small ones:
    what is released before the failure is a prefix, and nothing from a bad chunk."""
    data = random.Random(size).randbytes(size)
    sealed, header_size = seal_in_pieces(data, [size // 3, size // 2], "one reviewer")
    identity = IDENTITIES[0]
    assert len(sealed) == expected_length(header_size, size)
    assert read_to_end(sealed, [identity], 3 * CHUNK + 7) == data
    starts = range(header_size + NONCE, len(sealed), CHUNK + TAG)
    for k, start in enumerate(starts):
        released = _released_before_failure(sealed[:start], [identity])
        assert data.startswith(released) and len(released) <= k * CHUNK
        damaged = bytearray(sealed)
        damaged[start + k % min(CHUNK + TAG, len(sealed) - start)] ^= 0x10
        released = _released_before_failure(bytes(damaged), [identity])
        assert data.startswith(released) and len(released) <= k * CHUNK
    for trailing in (b"\0", bytes(CHUNK + TAG)):
        assert data.startswith(_released_before_failure(sealed + trailing, [identity]))


@settings(max_examples=40, **SETTINGS)
@given(data=plaintexts(), kind=kinds, trailing=st.binary(min_size=1, max_size=CHUNK + TAG + 1))
def test_data_after_the_final_chunk_is_refused(data: bytes, kind: str, trailing: bytes) -> None:
    sealed, _ = seal_in_pieces(data, [], kind)
    with pytest.raises(crypto.PayloadError):
        read_to_end(sealed + trailing, KINDS[kind][1])


class UploadInterrupted(Exception):
    pass


@settings(max_examples=60, **SETTINGS)
@given(data=plaintexts(), kind=kinds, armor=st.booleans(), where=st.integers(0, 2**32))
def test_sealing_interrupted_by_an_error_never_opens(
    data: bytes, kind: str, armor: bool, where: int
) -> None:
    """An upload that fails half-way must not leave a shorter item that opens cleanly."""
    out = io.BytesIO()
    cut = where % (len(data) + 1)
    with pytest.raises(UploadInterrupted):
        with crypto.seal(out, KINDS[kind][0], armor=armor) as writer:
            writer.write(data[:cut])
            raise UploadInterrupted()
    with pytest.raises(AgeError):
        read_to_end(out.getvalue(), KINDS[kind][1])


def _upload_without_with(out: io.BytesIO, data: bytes, kind: str, armor: bool) -> None:
    writer = crypto.seal(out, KINDS[kind][0], armor=armor)
    writer.write(data)
    raise UploadInterrupted()


@settings(max_examples=30, **SETTINGS)
@given(data=plaintexts(), kind=kinds, armor=st.booleans())
def test_a_writer_dropped_unclosed_never_opens(data: bytes, kind: str, armor: bool) -> None:
    out = io.BytesIO()
    with pytest.raises(UploadInterrupted):
        _upload_without_with(out, data, kind, armor)
    gc.collect()  # the abandoned writer is finalised here at the latest
    with pytest.raises(AgeError):
        read_to_end(out.getvalue(), KINDS[kind][1])


@settings(max_examples=60, **SETTINGS)
@given(
    data=plaintexts(),
    original=st.sets(st.integers(0, 3), min_size=1),
    new=st.sets(st.integers(0, 3), min_size=1),
    replace=st.booleans(),
)
def test_recipient_rewrite_changes_only_the_header(
    data: bytes, original: set[int], new: set[int], replace: bool
) -> None:
    sealed = crypto.seal_bytes(data, [IDENTITIES[i].recipient for i in sorted(original)])
    header, _ = crypto.read_header(io.BytesIO(sealed))
    opener = [IDENTITIES[max(original)]]
    recipients = [IDENTITIES[i].recipient for i in sorted(new)]
    if replace:
        new_header = crypto.set_recipients(header, opener, recipients)
        readers = new
    else:
        new_header = crypto.add_recipients(header, opener, recipients)
        readers = original | new
    out = io.BytesIO()
    crypto.rewrite_recipients(io.BytesIO(sealed), out, new_header)
    rewritten = out.getvalue()

    old_size, new_size = len(header.marshal()), len(new_header.marshal())
    assert rewritten[:new_size] == new_header.marshal()
    assert rewritten[new_size:] == sealed[old_size:]  # nonce and payload, byte for byte
    for i, identity in enumerate(IDENTITIES):
        if i in readers:
            assert crypto.unseal_bytes(rewritten, [identity]) == data
        else:
            with pytest.raises(NoIdentityMatchError):
                crypto.unseal_bytes(rewritten, [identity])
    # The original is untouched and still opens for its own recipients.
    assert crypto.unseal_bytes(sealed, opener) == data


def test_rewrite_between_passphrase_and_keys() -> None:
    data = b"invented statement: the second bus arrived at 14:10\n" * 3000
    reviewer, recovery = IDENTITIES[0], IDENTITIES[1]
    sealed = crypto.seal_bytes(data, [ScryptRecipient(PASSPHRASE, work_factor=2)])
    header, _ = crypto.read_header(io.BytesIO(sealed))

    to_keys = crypto.set_recipients(
        header, [ScryptIdentity(PASSPHRASE)], [reviewer.recipient, recovery.recipient]
    )
    out = io.BytesIO()
    crypto.rewrite_recipients(io.BytesIO(sealed), out, to_keys)
    keyed = out.getvalue()
    assert crypto.unseal_bytes(keyed, [reviewer]) == data
    assert crypto.unseal_bytes(keyed, [recovery]) == data
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(keyed, [ScryptIdentity(PASSPHRASE)])

    # A passphrase cannot join other recipients, and a stranger cannot add anyone.
    with pytest.raises(ValueError):
        crypto.add_recipients(to_keys, [reviewer], [ScryptRecipient(PASSPHRASE, work_factor=2)])
    with pytest.raises(NoIdentityMatchError):
        crypto.add_recipients(to_keys, [IDENTITIES[3]], [IDENTITIES[3].recipient])

    back = crypto.set_recipients(
        to_keys, [recovery], [ScryptRecipient("another passphrase", work_factor=2)]
    )
    out = io.BytesIO()
    crypto.rewrite_recipients(io.BytesIO(keyed), out, back)
    assert out.getvalue()[len(back.marshal()) :] == sealed[len(header.marshal()) :]
    assert crypto.unseal_bytes(out.getvalue(), [ScryptIdentity("another passphrase")]) == data
    with pytest.raises(NoIdentityMatchError):
        crypto.unseal_bytes(out.getvalue(), [reviewer])


@settings(max_examples=60, **SETTINGS)
@given(
    data=plaintexts(),
    cuts=st.lists(st.integers(0, 4 * CHUNK), max_size=6),
    kind=kinds,
    crlf=st.booleans(),
    before=st.sampled_from(["", "\n", " \r\n\t"]),
    after=st.sampled_from(["", "\n", "\r\n  \n"]),
)
def test_armor_round_trips(
    data: bytes, cuts: list[int], kind: str, crlf: bool, before: str, after: str
) -> None:
    armored, _ = seal_in_pieces(data, cuts, kind, armor=True)
    text = armored.decode("ascii")  # armor is plain ASCII
    lines = text.split("\n")
    assert lines[0] == BEGIN.decode() and lines[-2] == END.decode() and lines[-1] == ""
    body = lines[1:-2]
    assert body and all(len(line) == 64 for line in body[:-1]) and 0 < len(body[-1]) <= 64
    _, identities = KINDS[kind]
    assert read_to_end(armored, identities) == data  # detected
    assert read_to_end(armored, identities, armor=True) == data
    # What the armor holds is the binary item itself.
    binary = base64.b64decode("".join(body))
    assert read_to_end(binary, identities, armor=False) == data
    # Line endings and surrounding whitespace that editors and mail add are tolerated.
    if crlf:
        armored = armored.replace(b"\n", b"\r\n")
    assert read_to_end(before.encode() + armored + after.encode(), identities) == data
