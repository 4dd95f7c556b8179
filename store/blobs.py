"""Sealed items: the one service that seals, opens and reseals what Testimony stores.

Every item is sealed as an ordinary age file to its readers and stored as its header
(one column, so sharing rewrites only the header) and its payload split into 1 MiB chunk
rows, all inside the caller's transaction. An item's readers are the instance's active
recipients (reviewers and the recovery key) plus, for a reply, the witness's reply key;
every reader is a registered :class:`~store.models.Recipient`, and ``blob_recipient``
rows record which ones a header names, so sharing, disabling, checks and key upgrades
treat every stanza alike.

* :func:`seal_document` / :func:`open_document`: a JSON document (statement, details,
  note, reply, excerpt), padded before sealing (see :func:`pad_document`) so the
  ciphertext length only reveals a size bucket.
* :class:`BlobWriter` / :func:`seal_data` / :func:`open_item` / :func:`read_item`: bytes
  (uploads, working copies, metadata), streamed in constant memory.
* :func:`reseal`: a header rewrite (add readers, drop readers, or wrap the file key
  afresh for the registered readers); the payload chunks are never touched.
* :func:`read_sealed_many` / :func:`open_sealed_document`: many small items with one
  query (search, exports).

Nothing here holds a private key except the opening functions, which only the review
side (and a witness's own follow-up, with the key their receipt derives) call.

Mixing post-quantum and classic readers in one item is refused unless asked for
(``allow_mixed``): a mixed item is only as strong as its classic stanza. The one mix
sealing accepts on its own is the instance's: while a key upgrade is under way (the
recovery key already post-quantum, some reviewers not yet back to move theirs) the
active recipients themselves are mixed, and refusing would stop intake.
"""

from __future__ import annotations

import io
import json
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import delete, func, select
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

import crypto

from .models import BlobChunk, BlobRecipient, Recipient, SealedBlob

if TYPE_CHECKING:
    from typing_extensions import Buffer

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

    def write(self, data: Buffer, /) -> int:
        size = memoryview(data).nbytes
        self._buf += data
        while len(self._buf) >= CHUNK_BYTES:
            self._emit(bytes(self._buf[:CHUNK_BYTES]))
            del self._buf[:CHUNK_BYTES]
        return size

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

    def write(self, data: Buffer, /) -> int:
        if self.header:
            return self.sink.write(data)
        size = memoryview(data).nbytes
        self._head += data
        mac = self._head.find(b"\n--- ")
        end = self._head.find(b"\n", mac + 1) if mac >= 0 else -1
        if end >= 0:
            self.header = bytes(self._head[: end + 1])
            self.sink.write(self._head[end + 1 :])
            self._head.clear()
        return size


class NoRecipientsError(RuntimeError):
    """Raised instead of accepting anything that nobody could read."""


class NoReaderLeftError(ValueError):
    """Raised instead of resealing an item so that no reviewer could open it."""


def active_recipients(session: Session) -> list[Recipient]:
    """The instance's readers of every new item: active reviewer and recovery keys."""
    return list(
        session.scalars(
            select(Recipient)
            .where(Recipient.active.is_(True), Recipient.kind != "witness")
            .order_by(Recipient.id)
        )
    )


def _mixed(keys: Iterable[str]) -> bool:
    return len({crypto.key_kind(k) for k in keys}) > 1


def _readers(
    session: Session, readers: Iterable[Recipient], allow_mixed: bool
) -> tuple[list[Recipient], bool]:
    """The active recipients and ``readers``, in id order (stanzas follow it), and
    whether sealing to them may mix key types."""
    instance = active_recipients(session)
    if not instance:
        raise NoRecipientsError("no active recipient: nothing can be sealed")
    chosen = {r.id: r for r in [*instance, *readers]}
    everyone = [chosen[i] for i in sorted(chosen)]
    return everyone, allow_mixed or _mixed(r.public_key for r in instance)


class BlobWriter(io.RawIOBase):
    """A writer that seals into a new :class:`SealedBlob` for the active recipients and
    ``readers``; ``close()`` (or leaving the ``with`` block) finishes it."""

    def __init__(
        self, session: Session, *, readers: Iterable[Recipient] = (), allow_mixed: bool = False
    ) -> None:
        super().__init__()
        recipients, mixed = _readers(session, readers, allow_mixed)
        keys = [crypto.parse_recipient(r.public_key) for r in recipients]
        self.blob = SealedBlob(header=b"", payload_size=0, chunk_count=0)
        self._sink = _ChunkSink(session, self.blob)
        self._splitter = _HeaderSplitter(self._sink)
        self._writer = crypto.seal(self._splitter, keys, allow_mixed=mixed)
        session.add(self.blob)
        session.flush()
        for recipient in recipients:
            session.add(BlobRecipient(blob_id=self.blob.id, recipient_id=recipient.id))
        self.blob.header = self._splitter.header

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer, /) -> int:
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


def seal_data(
    session: Session,
    data: bytes,
    *,
    readers: Iterable[Recipient] = (),
    allow_mixed: bool = False,
) -> SealedBlob:
    """Seal ``data`` as it is (no padding) into a new blob (see :class:`BlobWriter`)."""
    with BlobWriter(session, readers=readers, allow_mixed=allow_mixed) as writer:
        writer.write(data)
    return writer.blob


def seal_document(
    session: Session,
    document: dict[str, object],
    *,
    readers: Iterable[Recipient] = (),
    allow_mixed: bool = False,
) -> SealedBlob:
    """Seal ``document`` as padded JSON (see :func:`pad_document`) into a new blob, for
    the active recipients and ``readers`` (a witness's reply recipient for a reply)."""
    return seal_data(session, pad_document(document), readers=readers, allow_mixed=allow_mixed)


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


def unpad_document(data: bytes) -> dict[str, Any]:
    document = json.loads(data.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("a sealed document is not a JSON object")
    document.pop("pad", None)
    return document


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

    def readinto(self, buffer: Buffer, /) -> int:
        while not self._pending:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._pending = nxt
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def sealed_stream(session: Session, blob: SealedBlob) -> BinaryIO:
    """The blob as an age file (header then payload), streamed from the database."""
    return io.BufferedReader(
        _ChunkReader(blob.header, _chunks(session, blob.id)), buffer_size=CHUNK_BYTES
    )


def _item(session: Session, blob_id: int) -> SealedBlob:
    blob = session.get(SealedBlob, blob_id)
    if blob is None:
        raise LookupError("sealed item %d does not exist" % blob_id)
    return blob


def open_item(
    session: Session, blob_id: int, identities: Iterable[crypto.Identity]
) -> crypto.StreamReader:
    """A plaintext reader of the item, streamed. It needs a private key: review side
    (and a witness's follow-up) only."""
    return crypto.unseal(sealed_stream(session, _item(session, blob_id)), identities, armor=False)


def read_item(session: Session, blob_id: int, identities: Iterable[crypto.Identity]) -> bytes:
    """The item's plaintext, whole in memory (small items: metadata, working copies)."""
    with open_item(session, blob_id, identities) as reader:
        return reader.read()


def open_document(
    session: Session, blob_id: int, identities: Iterable[crypto.Identity]
) -> dict[str, Any]:
    """The document :func:`seal_document` sealed, unpadded."""
    return unpad_document(read_item(session, blob_id, identities))


def header_of(blob: SealedBlob) -> crypto.Header:
    header, _source = crypto.read_header(io.BytesIO(blob.header), armor=False)
    return header


def blob_recipients(session: Session, blob_id: int) -> list[Recipient]:
    """The registered recipients a blob's header names, in id order."""
    return list(
        session.scalars(
            select(Recipient)
            .join(BlobRecipient, BlobRecipient.recipient_id == Recipient.id)
            .where(BlobRecipient.blob_id == blob_id)
            .order_by(Recipient.id)
        )
    )


def reseal(
    session: Session,
    blob_id: int,
    identities: Iterable[crypto.Identity],
    *,
    add: Iterable[Recipient] = (),
    drop: Iterable[Recipient] = (),
    allow_mixed: bool = False,
) -> None:
    """Rewrite the item's header for its registered readers plus ``add`` minus ``drop``.

    Same file key, so the payload chunks stay valid. Adding only appends stanzas (the
    others are kept byte for byte); any drop, or a call with neither, wraps the file key
    afresh for every remaining reader (a reader whose key changed in place, a witness's
    reply key, gets a stanza for the new key). ``identities`` must open the item
    (NoIdentityMatchError otherwise). Refuses (NoReaderLeftError) to leave an item that
    no reviewer or recovery key can open. An item already mixing key types may stay
    mixed; making a new mix needs ``allow_mixed``, as for sealing.
    """
    identities, add, drop = list(identities), list(add), list(drop)
    blob = _item(session, blob_id)
    current = blob_recipients(session, blob.id)
    named = {r.id for r in current}
    dropped = {r.id for r in drop}
    added = [r for r in add if r.id not in named]
    remaining = [r for r in current if r.id not in dropped]
    readers = sorted([*remaining, *added], key=lambda r: r.id)
    if not any(r.kind != "witness" for r in readers):
        raise NoReaderLeftError("sealed item %d would have no reader left" % blob.id)
    header = header_of(blob)
    mixed = allow_mixed or len({s.type for s in header.stanzas}) > 1
    if not drop and add:
        if not added:
            return
        header = crypto.add_recipients(
            header,
            identities,
            [crypto.parse_recipient(r.public_key) for r in added],
            allow_mixed=mixed,
        )
    else:
        header = crypto.set_recipients(
            header,
            identities,
            [crypto.parse_recipient(r.public_key) for r in readers],
            allow_mixed=mixed,
        )
    blob.header = header.marshal()
    session.execute(delete(BlobRecipient).where(BlobRecipient.blob_id == blob.id))
    for recipient in readers:
        session.add(BlobRecipient(blob_id=blob.id, recipient_id=recipient.id))


def discard(session: Session, blob_ids: Iterable[int]) -> None:
    """Delete sealed items with their chunks and recipient rows (nothing may refer to
    them any more: the caller has removed or repointed what did)."""
    ids = sorted(set(blob_ids))
    if not ids:
        return
    for table in (BlobChunk, BlobRecipient):
        session.execute(delete(table).where(table.blob_id.in_(ids)))
    session.execute(delete(SealedBlob).where(SealedBlob.id.in_(ids)))


# --- many small items at once (search) ---------------------------------------------------

READ_MANY_ROWS = 256  # rows fetched from the database at a time by read_sealed_many


Column = ColumnElement[Any] | QueryableAttribute[Any]


def read_sealed_many(
    session: Session,
    blob_id: Column,
    keys: Sequence[Column],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Column] = (),
    reader: crypto.Identity | None = None,
) -> Generator[tuple[tuple[Any, ...], bytes, int | None]]:
    """Many small blobs (statements) as age files, read with one streamed query instead
    of queries per blob; each blob is held whole in memory, so not for uploads.

    ``blob_id`` is a column of the table that owns the blobs (``Statement.blob_id``),
    ``keys`` the columns of that table to return with each blob, ``where`` and
    ``order_by`` select and order its rows. Yields ``(keys, sealed, first)`` per row in
    that order: ``sealed`` is the header followed by the payload (what
    :func:`open_sealed` opens), ``first`` the index of ``reader``'s stanza in the header
    if the stanzas follow the blob's registered recipients in id order, as sealing lays
    them out (a hint for :func:`open_sealed`; None when ``reader`` is not a registered
    recipient). Nothing is unsealed here.
    """
    recipient_id = (
        session.scalar(select(Recipient.id).where(Recipient.public_key == str(reader.recipient)))
        if reader is not None
        else None
    )
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
    return crypto.unseal_bytes(sealed, [identity], armor=False, first_stanza=first)


def open_sealed_document(
    sealed: bytes, identity: crypto.Identity, first: int | None = None
) -> dict[str, Any]:
    """:func:`open_sealed`, then the document :func:`seal_document` sealed."""
    return unpad_document(open_sealed(sealed, identity, first))
