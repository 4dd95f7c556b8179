"""Sealed-blob storage in the database.

Every item is sealed to the active recipients as an ordinary age file, then stored as its
header (one column, so sharing rewrites only the header) and its payload split into
1 MiB chunk rows, all inside the caller's transaction. Nothing here ever holds a private
key except :func:`open_blob`, which only the review side calls with an unlocked identity.

Statements are padded before sealing (see :func:`pad_document`) so the ciphertext length
only reveals a size bucket.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

import crypto
from crypto.stream import NONCE_SIZE, StreamReader, payload_key

from .models import BlobChunk, BlobRecipient, Recipient, SealedBlob

CHUNK_BYTES = 1024 * 1024
# Smallest bucket 4 KiB, then doubling: a statement of 100,000 Cyrillic characters
# (about 200 KB in UTF-8) lands in the 256 KiB bucket.
PAD_BUCKETS = [4096 << i for i in range(12)]


class _ChunkSink(io.RawIOBase):
    """Receives ciphertext and stores it as chunk rows of the given blob."""

    def __init__(self, session: Session, blob: SealedBlob) -> None:
        super().__init__()
        self._session = session
        self._blob = blob
        self._buf = bytearray()
        self.size = 0
        self.seq = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buf += data
        while len(self._buf) >= CHUNK_BYTES:
            self._emit(bytes(self._buf[:CHUNK_BYTES]))
            del self._buf[:CHUNK_BYTES]
        return len(data)

    def _emit(self, data: bytes) -> None:
        self._session.add(BlobChunk(blob_id=self._blob.id, seq=self.seq, data=data))
        self.seq += 1
        self.size += len(data)
        if self.seq % 8 == 0:
            self._session.flush()  # keep the unit of work, and so memory, small

    def finish(self) -> None:
        if self._buf:
            self._emit(bytes(self._buf))
            self._buf.clear()


class _HeaderSplitter(io.RawIOBase):
    """Keeps the age header apart and passes everything after it to the chunk sink."""

    def __init__(self, sink: _ChunkSink) -> None:
        super().__init__()
        self.sink = sink
        self.header = b""
        self._head = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.header:
            return self.sink.write(data)
        self._head += data
        mac = self._head.find(b"\n--- ")
        end = self._head.find(b"\n", mac + 1) if mac >= 0 else -1
        if end >= 0:
            self.header = bytes(self._head[: end + 1])
            self.sink.write(self._head[end + 1 :])
            self._head.clear()
        return len(data)


class BlobWriter(io.RawIOBase):
    """A writer that seals into a new :class:`SealedBlob`; ``close()`` finishes it.

    ``extra`` keys are sealed to as well but are not registered recipients (a witness's
    reply key).
    """

    def __init__(
        self, session: Session, recipients: list[Recipient], extra: Iterable[crypto.Recipient] = ()
    ) -> None:
        super().__init__()
        if not recipients:
            raise NoRecipientsError("no active recipient: nothing can be sealed")
        self.blob = SealedBlob(header=b"", payload_size=0, chunk_count=0)
        session.add(self.blob)
        session.flush()
        for recipient in recipients:
            session.add(BlobRecipient(blob_id=self.blob.id, recipient_id=recipient.id))
        self._sink = _ChunkSink(session, self.blob)
        self._splitter = _HeaderSplitter(self._sink)
        keys = [crypto.parse_recipient(r.public_key) for r in recipients] + list(extra)
        self._writer = crypto.seal(self._splitter, keys)  # type: ignore[arg-type]
        self.blob.header = self._splitter.header

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._writer.write(data)

    def close(self) -> None:
        if not self.closed:
            self._writer.close()
            self._sink.finish()
            self.blob.payload_size = self._sink.size
            self.blob.chunk_count = self._sink.seq
            super().close()

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.close()
        else:
            # Leave the blob unfinished (no final chunk): it can never unseal as a
            # shorter item, and the caller's transaction rolls it back.
            self._writer.abort()
            super().close()


class NoRecipientsError(RuntimeError):
    """Raised instead of accepting anything that nobody could read."""


def active_recipients(session: Session) -> list[Recipient]:
    return list(
        session.scalars(select(Recipient).where(Recipient.active.is_(True)).order_by(Recipient.id))
    )


def seal_blob(
    session: Session,
    recipients: list[Recipient],
    data: bytes,
    extra: Iterable[crypto.Recipient] = (),
) -> SealedBlob:
    """Seal ``data`` into a new blob (see :class:`BlobWriter`)."""
    with BlobWriter(session, recipients, extra) as writer:
        writer.write(data)
    return writer.blob


def pad_document(document: dict[str, object]) -> bytes:
    """JSON of ``document`` padded with a ``pad`` field of spaces to the next bucket.

    The sealed length then says only which bucket a statement falls in. The result is
    plain JSON, readable offline after ``age -d``.
    """
    body = json.dumps({**document, "pad": ""}, ensure_ascii=False, sort_keys=True).encode()
    target = next((b for b in PAD_BUCKETS if b >= len(body)), len(body))
    return json.dumps(
        {**document, "pad": " " * (target - len(body))}, ensure_ascii=False, sort_keys=True
    ).encode()


def unpad_document(data: bytes) -> dict[str, object]:
    document = json.loads(data.decode("utf-8"))
    document.pop("pad", None)
    return document  # type: ignore[no-any-return]


def _chunks(session: Session, blob_id: int) -> Iterator[bytes]:
    seq = 0
    while True:
        rows = list(
            session.scalars(
                select(BlobChunk.data)
                .where(BlobChunk.blob_id == blob_id, BlobChunk.seq >= seq)
                .order_by(BlobChunk.seq)
                .limit(8)
            )
        )
        if not rows:
            return
        yield from rows
        seq += len(rows)


class _ChunkReader(io.RawIOBase):
    def __init__(self, header: bytes, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._pending = header
        self._chunks = chunks

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._pending = nxt
        n = min(len(buffer), len(self._pending))
        memoryview(buffer)[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def sealed_stream(session: Session, blob: SealedBlob) -> BinaryIO:
    """The blob as an age file (header then payload), streamed from the database."""
    return io.BufferedReader(
        _ChunkReader(blob.header, _chunks(session, blob.id)), buffer_size=CHUNK_BYTES
    )


def open_blob(
    session: Session, blob: SealedBlob, identities: Iterable[crypto.Identity]
) -> BinaryIO:
    """A plaintext reader of ``blob``. Review side only: it needs a private key."""
    return crypto.unseal(sealed_stream(session, blob), identities, armor=False)  # type: ignore[return-value]


def read_blob(session: Session, blob: SealedBlob, identities: Iterable[crypto.Identity]) -> bytes:
    return open_blob(session, blob, identities).read()


def blob_header(blob: SealedBlob) -> crypto.Header:
    header, _source = crypto.read_header(io.BytesIO(blob.header), armor=False)
    return header


def replace_header(
    session: Session, blob: SealedBlob, header: crypto.Header, recipients: Iterable[Recipient]
) -> None:
    """Store a rewritten header (same file key, so the payload chunks stay valid) and
    record which registered recipients it names."""
    blob.header = header.marshal()
    session.execute(BlobRecipient.__table__.delete().where(BlobRecipient.blob_id == blob.id))
    for recipient in recipients:
        session.add(BlobRecipient(blob_id=blob.id, recipient_id=recipient.id))


def blob_recipients(session: Session, blob_id: int) -> list[Recipient]:
    """The registered recipients a blob's header names."""
    return list(
        session.scalars(
            select(Recipient)
            .join(BlobRecipient, BlobRecipient.recipient_id == Recipient.id)
            .where(BlobRecipient.blob_id == blob_id)
            .order_by(Recipient.id)
        )
    )


# --- many small items at once (search) ---------------------------------------------------

READ_MANY_ROWS = 256  # rows fetched from the database at a time by read_sealed_many


def read_sealed_many(
    session: Session,
    blob_id: ColumnElement[int],
    keys: Sequence[ColumnElement[Any]],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[ColumnElement[Any]] = (),
    recipient_id: int | None = None,
) -> Iterator[tuple[tuple[Any, ...], bytes, int | None]]:
    """Many small blobs (statements) as age files, read with one streamed query instead
    of queries per blob; each blob is held whole in memory, so not for uploads.

    ``blob_id`` is a column of the table that owns the blobs (``Statement.blob_id``),
    ``keys`` the columns of that table to return with each blob, ``where`` and
    ``order_by`` select and order its rows. Yields ``(keys, sealed, first)`` per row in
    that order: ``sealed`` is the header followed by the payload (what
    :func:`open_sealed` opens), ``first`` the index of ``recipient_id``'s stanza in the
    header if the stanzas follow the blob's registered recipients in id order, as
    sealing lays them out (a hint for :func:`open_sealed`; None without a recipient).
    Nothing is unsealed here.
    """
    columns: list[Any] = [*keys, SealedBlob.id, SealedBlob.header]
    if recipient_id is not None:
        columns.append(
            select(func.count())
            .select_from(BlobRecipient)
            .where(
                BlobRecipient.blob_id == SealedBlob.id, BlobRecipient.recipient_id < recipient_id
            )
            .scalar_subquery()
        )
    query = (
        select(*columns, BlobChunk.data)
        .join(SealedBlob, SealedBlob.id == blob_id)
        .outerjoin(BlobChunk, BlobChunk.blob_id == SealedBlob.id)
        .where(*where)
        .order_by(*order_by, SealedBlob.id, BlobChunk.seq)
        .execution_options(yield_per=READ_MANY_ROWS)
    )
    width = len(keys)
    current: tuple[Any, ...] | None = None
    parts: list[bytes] = []
    first: int | None = None
    result = session.execute(query)
    try:
        for row in result:
            # Rows of one blob are adjacent (ordered by blob id, then chunk).
            marker = (*row[:width], row[width])
            if marker != current:
                if current is not None:
                    yield current[:width], b"".join(parts), first
                current = marker
                parts = [row[width + 1]]
                first = row[width + 2] if recipient_id is not None else None
            if row[-1] is not None:
                parts.append(row[-1])
        if current is not None:
            yield current[:width], b"".join(parts), first
    finally:
        result.close()  # a search that stops early leaves no cursor open


def open_sealed(sealed: bytes, identity: crypto.Identity, first: int | None = None) -> bytes:
    """Unseal an age file held in memory (as :func:`read_sealed_many` yields) with one
    identity; the plaintext stays in memory.

    ``first`` only orders the attempts: the stanza at that index is tried before the
    others, all of which are still tried, so the outcome is that of :func:`crypto.unseal`
    (NoIdentityMatchError if none is ours), only quicker when the hint is right (each
    hybrid stanza tried costs an ML-KEM decapsulation).
    """
    header, source = crypto.read_header(io.BytesIO(sealed), armor=False)
    if first is not None and 0 < first < len(header.stanzas):
        stanzas = header.stanzas
        header = dataclasses.replace(
            header, stanzas=[stanzas[first], *stanzas[:first], *stanzas[first + 1 :]]
        )
    file_key = crypto.unwrap_file_key(header, [identity])
    nonce = source.read(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise crypto.HeaderError("file is truncated: the payload nonce is missing")
    return StreamReader(source, payload_key(file_key, nonce)).readall()
