"""age v1 (age-encryption.org/v1) sealing, built on ``cryptography``.

Testimony seals every statement, upload, contact detail, note and reply as an age file so
that reviewers can always open it offline with the reference ``age`` tool. Everything a
caller needs is here: nothing outside this package imports ``crypto.stream``,
``crypto.format`` or ``crypto.keys``.

When to use what:

* :func:`seal` / :func:`unseal` stream: a writer that encrypts into a destination and a
  reader that decrypts from a source, in constant memory whatever the size. Use them for
  uploads and anything large.
* :func:`seal_bytes` / :func:`unseal_bytes` for small values held in memory anyway.
* :func:`add_recipients` / :func:`set_recipients` rewrite only the header of a sealed item
  (to share it with a new reviewer or drop a disabled one); the payload is not touched.
  :func:`read_header` parses a header, :func:`rewrite_recipients` copies an item under a
  new one.
* Mixing: :func:`seal`, :func:`seal_bytes`, :func:`add_recipients` and
  :func:`set_recipients` refuse to give one item post-quantum and classic recipients
  together (:class:`MixedRecipientsError`, as age refuses it: a file is only as strong as
  its weakest stanza); ``allow_mixed=True`` opts in, for transitional key upgrades.
  :func:`add_recipients` judges the existing stanzas and the new recipients together.
* Which stanza: ``unseal(..., first_stanza=i)`` and ``unseal_bytes(..., first_stanza=i)``
  try the header stanza at index ``i`` first, then the rest in order (a hint: the
  outcome is the same, an out-of-range index is ignored), so a caller that remembers
  which stanza opened an item last time skips the trial unwraps (each hybrid stanza
  tried costs an ML-KEM decapsulation). The index comes from
  :func:`matching_stanza` ``(header | sealed bytes | reader, identities) -> int | None``
  or from the ``stanza_index`` of the reader :func:`unseal` returns.
  :func:`unwrap_file_key` takes ``first_stanza`` too.
* :func:`stream_writer` / :func:`stream_reader`: the bare STREAM payload under a
  caller's random 32-byte key, no header, for scratch data that never leaves the process
  (spooled uploads). Not an age file.

Keys: :class:`X25519Identity` (``AGE-SECRET-KEY-1…``) and its :class:`X25519Recipient`
(``age1…``) for people; :class:`HybridIdentity` (``AGE-SECRET-KEY-PQ-1…``) and its
:class:`HybridRecipient` (``age1pq1…``), ML-KEM-768 + X25519, for items that must stay
sealed even against a future quantum computer (:mod:`crypto.mlkem768x25519` explains why
every recipient of such an item must then be hybrid); :class:`ScryptRecipient` /
:class:`ScryptIdentity` for a passphrase, which must be a file's only recipient. Private
keys never leave memory here; storing them is the caller's business (Testimony seals them
to a passphrase, :func:`write_secret_file` and :func:`identity_file_text` write an
age-keygen style file).

Key facts, so callers never compare prefixes or stanza strings themselves:
:func:`key_kind` ``(text) -> "x25519" | "mlkem768x25519"`` for a recipient or identity
string; :func:`stanza_type` ``(kind | key string | key) -> "X25519" | "mlkem768x25519"``
as written in headers; :func:`is_post_quantum`; :func:`key_type` / :func:`key_types`
give the registry's :class:`KeyType` records (prefixes, classes). Every recipient and
identity has ``post_quantum``, every identity ``recipient``. :func:`parse_recipient`,
:func:`parse_identity`, :func:`parse_recipients_file`, :func:`parse_identities_file`
parse text; :func:`read_identities` ``(path) -> list[Identity]`` reads an identity file
as ``age -i`` does (``"-"`` is standard input).

Failures raise a distinct subclass of :class:`AgeError`: :class:`HeaderError`,
:class:`HeaderMACError`, :class:`NoIdentityMatchError`, :class:`PayloadError`,
:class:`ArmorError`, :class:`KeyFormatError`, :class:`MixedRecipientsError`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from .armor import ArmorReader, ArmorWriter, is_armored
from .errors import (
    AgeError,
    ArmorError,
    HeaderError,
    HeaderMACError,
    KeyFormatError,
    MixedRecipientsError,
    NoIdentityMatchError,
    PayloadError,
)
from .format import (
    FILE_KEY_SIZE,
    Header,
    Readable,
    Source,
    Stanza,
    Writable,
    build_header,
    parse_header,
)
from .keys import (
    Identity,
    KeyType,
    Recipient,
    check_not_mixed,
    identity_file_text,
    is_post_quantum,
    key_kind,
    key_type,
    key_types,
    parse_identities_file,
    parse_identity,
    parse_recipient,
    parse_recipients_file,
    read_identities,
    stanza_type,
    write_secret_file,
)
from .mlkem768x25519 import HybridIdentity, HybridRecipient
from .scrypt import ScryptIdentity, ScryptRecipient
from .stream import NONCE_SIZE, StreamReader, StreamWriter, payload_key
from .x25519 import X25519Identity, X25519Recipient

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "AgeError",
    "ArmorError",
    "HeaderError",
    "HeaderMACError",
    "KeyFormatError",
    "MixedRecipientsError",
    "NoIdentityMatchError",
    "PayloadError",
    "Header",
    "Stanza",
    "Readable",
    "Writable",
    "Identity",
    "Recipient",
    "X25519Identity",
    "X25519Recipient",
    "HybridIdentity",
    "HybridRecipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "seal",
    "unseal",
    "seal_bytes",
    "unseal_bytes",
    "read_header",
    "unwrap_file_key",
    "matching_stanza",
    "stream_writer",
    "stream_reader",
    "StreamReader",
    "StreamWriter",
    "identity_file_text",
    "write_secret_file",
    "add_recipients",
    "set_recipients",
    "rewrite_recipients",
    "parse_recipient",
    "parse_identity",
    "parse_recipients_file",
    "parse_identities_file",
    "read_identities",
    "KeyType",
    "key_kind",
    "identity_file_text",
    "write_secret_file",
    "key_type",
    "key_types",
    "stanza_type",
    "is_post_quantum",
]


def _stanzas_for(
    recipients: Iterable[Recipient],
    file_key: bytes,
    allow_mixed: bool,
    existing: list[Stanza] | None = None,
) -> list[Stanza]:
    recipients = list(recipients)
    if not recipients:
        raise ValueError("at least one recipient is required")
    if len(recipients) > 1 and any(isinstance(r, ScryptRecipient) for r in recipients):
        raise ValueError("a passphrase must be the only recipient of a sealed item")
    if not allow_mixed:
        check_not_mixed(recipients, existing or [])
    stanzas: list[Stanza] = []
    for recipient in recipients:
        stanzas.extend(recipient.wrap(file_key))
    return stanzas


class _Abortable:
    """Passes writes on to ``dst`` until :meth:`abort`; afterwards drops them."""

    def __init__(self, dst: Writable) -> None:
        self._dst = dst
        self.aborted = False

    def write(self, data: Buffer, /) -> int | None:
        return memoryview(data).nbytes if self.aborted else self._dst.write(data)


class _SealWriter(io.RawIOBase):
    """What :func:`seal` returns: write plaintext, then close to finish the item.

    Leaving a ``with`` block by an exception, or dropping the writer unclosed, aborts
    instead: the final chunk is never written, so an interrupted upload cannot pass for a
    complete, shorter item.
    """

    def __init__(
        self, dst: Writable, recipients: Iterable[Recipient], armor: bool, allow_mixed: bool
    ) -> None:
        super().__init__()
        self._sink = _Abortable(dst)
        self._armor = ArmorWriter(self._sink) if armor else None
        out: Writable = self._armor if self._armor else self._sink
        file_key = os.urandom(FILE_KEY_SIZE)
        header = build_header(_stanzas_for(recipients, file_key, allow_mixed), file_key)
        nonce = os.urandom(NONCE_SIZE)
        out.write(header.marshal() + nonce)
        self.header = header
        self._stream = StreamWriter(out, payload_key(file_key, nonce))

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer, /) -> int:
        return self._stream.write(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            if self._armor:
                self._armor.close()
            super().close()

    def abort(self) -> None:
        """Stop without finishing: what was written will not unseal."""
        self._sink.aborted = True
        self.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # Collected without close(): abandoned, so never finished behind the caller's back.
        if not self.closed and hasattr(self, "_sink"):
            self._sink.aborted = True
        super().__del__()


def seal(
    dst: Writable,
    recipients: Iterable[Recipient],
    *,
    armor: bool = False,
    allow_mixed: bool = False,
) -> _SealWriter:
    """Start sealing to ``recipients``; returns a writer that must be closed.

    The header and nonce are written to ``dst`` at once; each 64 KiB of plaintext is
    written as soon as it is complete. ``dst`` is not closed. An exception leaving a
    ``with`` block (or :meth:`abort`) leaves the item unfinished, so it never unseals.
    Post-quantum and classic recipients together raise :class:`MixedRecipientsError`
    before anything is written, unless ``allow_mixed``.
    """
    return _SealWriter(dst, recipients, armor, allow_mixed)


def _unwrap(
    header: Header, identities: Iterable[Identity], first_stanza: int | None
) -> tuple[bytes, int]:
    """The file key and the index of the stanza it came from; the header MAC checked."""
    stanzas = header.stanzas
    if any(s.type == "scrypt" for s in stanzas) and len(stanzas) != 1:
        raise HeaderError("a scrypt stanza must be the only stanza in the header")
    order = list(range(len(stanzas)))
    if first_stanza is not None and 0 <= first_stanza < len(stanzas):
        order.remove(first_stanza)
        order.insert(0, first_stanza)
    for identity in identities:
        for index in order:
            file_key = identity.unwrap([stanzas[index]])
            if file_key is not None:
                header.verify_mac(file_key)
                return file_key, index
    raise NoIdentityMatchError()


def unwrap_file_key(
    header: Header, identities: Iterable[Identity], *, first_stanza: int | None = None
) -> bytes:
    """Find the file key with any of ``identities`` and check the header MAC with it.

    Each identity is tried on each stanza in header order, except that the stanza at
    index ``first_stanza`` (a hint; ignored when out of range) is tried first.
    """
    return _unwrap(header, identities, first_stanza)[0]


def matching_stanza(
    sealed: Header | bytes | Readable,
    identities: Iterable[Identity],
    *,
    first_stanza: int | None = None,
) -> int | None:
    """The index of the header stanza that one of ``identities`` unwraps; None if none
    does. ``sealed`` is a parsed header, a sealed item in memory, or a binary reader
    positioned at one (armor detected). Pass the index as ``first_stanza`` to
    :func:`unseal` or :func:`unseal_bytes` next time to skip the trial unwraps.

    Failures are those of unsealing: :class:`HeaderError` for a malformed header,
    :class:`HeaderMACError` if the stanza opens but the header was altered.
    """
    if isinstance(sealed, Header):
        header = sealed
    elif isinstance(sealed, (bytes, bytearray, memoryview)):
        header, _ = read_header(io.BytesIO(bytes(sealed)), armor=None)
    else:
        header, _ = read_header(sealed, armor=None)
    try:
        return _unwrap(header, identities, first_stanza)[1]
    except NoIdentityMatchError:
        return None


def _source(src: Readable, armor: bool | None) -> Source:
    source = src if isinstance(src, Source) else Source(src)
    if armor is None:
        armor = is_armored(source.peek(64))
    return Source(ArmorReader(source)) if armor else source


def read_header(src: Readable, *, armor: bool | None = False) -> tuple[Header, Source]:
    """Parse the header; the returned source continues at the payload nonce."""
    source = _source(src, armor)
    return parse_header(source), source


def unseal(
    src: Readable,
    identities: Iterable[Identity],
    *,
    armor: bool | None = None,
    first_stanza: int | None = None,
) -> StreamReader:
    """Open a sealed item; returns a reader of the plaintext.

    ``armor=None`` detects ASCII armor. The header is checked before this returns;
    payload errors surface from ``read`` as :class:`PayloadError`, and plaintext is only
    ever released after its chunk authenticated. ``first_stanza`` is the index of the
    stanza to try first (then the rest in order), e.g. the reader's ``stanza_index``
    from last time; the outcome is the same, only fewer unwraps are tried when it is
    right. The returned reader's ``stanza_index`` says which stanza opened this time.
    """
    header, source = read_header(src, armor=armor)
    file_key, index = _unwrap(header, identities, first_stanza)
    nonce = source.read(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise HeaderError("file is truncated: the payload nonce is missing")
    reader = StreamReader(source, payload_key(file_key, nonce))
    reader.stanza_index = index
    return reader


def seal_bytes(
    data: bytes,
    recipients: Iterable[Recipient],
    *,
    armor: bool = False,
    allow_mixed: bool = False,
) -> bytes:
    """:func:`seal` of a value held in memory; returns the sealed item."""
    out = io.BytesIO()
    with seal(out, recipients, armor=armor, allow_mixed=allow_mixed) as writer:
        writer.write(data)
    return out.getvalue()


def unseal_bytes(
    data: bytes,
    identities: Iterable[Identity],
    *,
    armor: bool | None = None,
    first_stanza: int | None = None,
) -> bytes:
    """:func:`unseal` of an item held in memory; returns the plaintext."""
    return unseal(io.BytesIO(data), identities, armor=armor, first_stanza=first_stanza).readall()


def stream_writer(dst: Writable, key: bytes) -> StreamWriter:
    """A bare STREAM writer under a caller's 32-byte ``key`` (no age header): for
    short-lived scratch data such as a spooled upload. Close it to write the last chunk.
    Use a fresh random key each time; :func:`stream_reader` opens what it wrote."""
    return StreamWriter(dst, key)


def stream_reader(src: Readable, key: bytes) -> StreamReader:
    """Read back what :func:`stream_writer` wrote to ``src`` under ``key``, releasing
    plaintext only after its chunk authenticated."""
    return StreamReader(src if isinstance(src, Source) else Source(src), key)


def add_recipients(
    header: Header,
    identities: Iterable[Identity],
    recipients: Iterable[Recipient],
    *,
    allow_mixed: bool = False,
) -> Header:
    """A new header with the existing stanzas plus stanzas for ``recipients``.

    The mix is judged over the existing stanzas and the new recipients together: adding
    a hybrid recipient to an X25519-sealed item (or the reverse) raises
    :class:`MixedRecipientsError` unless ``allow_mixed`` (a transitional key upgrade).
    """
    recipients = list(recipients)
    if not allow_mixed:
        check_not_mixed(recipients, header.stanzas)
    file_key = unwrap_file_key(header, identities)
    new = _stanzas_for(recipients, file_key, allow_mixed, header.stanzas)
    if any(s.type == "scrypt" for s in header.stanzas + new):
        raise ValueError("a passphrase must be the only recipient of a sealed item")
    return build_header(header.stanzas + new, file_key)


def set_recipients(
    header: Header,
    identities: Iterable[Identity],
    recipients: Iterable[Recipient],
    *,
    allow_mixed: bool = False,
) -> Header:
    """A new header readable by exactly ``recipients`` (removes everyone else).

    Stanzas do not name their recipient, so removal wraps the file key afresh for each
    remaining recipient; those who are left out can no longer open the item. Mixed
    post-quantum and classic ``recipients`` raise :class:`MixedRecipientsError` unless
    ``allow_mixed``.
    """
    recipients = list(recipients)
    if not allow_mixed:
        check_not_mixed(recipients)
    file_key = unwrap_file_key(header, identities)
    return build_header(_stanzas_for(recipients, file_key, allow_mixed), file_key)


def rewrite_recipients(src: Readable, dst: Writable, new_header: Header) -> None:
    """Copy a sealed item from ``src`` to ``dst`` with ``new_header``, payload untouched.

    ``src`` must be a binary (not armored) sealed item; its header is read and replaced.
    """
    _, source = read_header(src, armor=False)
    dst.write(new_header.marshal())
    while True:
        block = source.read(1024 * 1024)
        if not block:
            break
        dst.write(block)
