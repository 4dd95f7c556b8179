"""The age payload: STREAM over ChaCha20-Poly1305 in 64 KiB chunks.

The payload key comes from the file key and a random 16-byte nonce written right after
the header. Chunk *i* is sealed with the nonce ``i`` (11 bytes, big-endian) followed by a
flag byte that is 1 only on the last chunk, so truncation and reordering are detected.
Only the last chunk may be shorter than 64 KiB, and it may be empty only if the whole
payload is.

Chunks are handled in batches of :data:`BATCH_CHUNKS` (1 MiB). ``cryptography`` releases
the GIL while it encrypts or decrypts, so the batches of a large payload are sealed or
opened by the shared worker threads of :mod:`crypto.workers` (one per core, at most four)
while the stream's own thread reads and writes; a batch that no worker has started when
its result is needed is run by the stream's thread itself. Results are used strictly in
order. A stream has at most :data:`IN_FLIGHT` batches queued or running, so its memory
stays constant whatever the size (about 10 MiB at most). Payloads under 1 MiB never
touch the workers.

Plaintext is released only after its chunk authenticated, and a reader fails at exactly
the point the chunk-by-chunk construction would: everything before the first bad chunk is
released, nothing from it on. Once a reader has failed, every further read fails the same
way.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import PayloadError
from .format import Source, Writable, hkdf
from .workers import Job, run_inline, run_pooled

if TYPE_CHECKING:
    from typing_extensions import Buffer

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENC_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16
_MAX_COUNTER = (1 << 88) - 1

BATCH_CHUNKS = 16  # chunks sealed or opened per job: 1 MiB of plaintext
IN_FLIGHT = 4  # batches per stream queued or running on the pool at any time


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return hkdf(file_key, nonce, b"payload")


def _chunk_nonce(counter: int, last: bool) -> bytes:
    if counter > _MAX_COUNTER:
        raise PayloadError("payload is too long: chunk counter overflow")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _write_all(dst: Writable, view: memoryview) -> None:
    while view:
        written = dst.write(view)
        view = view[written:] if written is not None else view[:0]


# --- sealing ---------------------------------------------------------------------------


def _seal_batch(
    aead: ChaCha20Poly1305, chunks: list[memoryview], counter: int, last: bool, out: bytearray
) -> int:
    """Encrypt ``chunks`` (chunk numbers from ``counter``) into ``out``; its length used.

    With ``last`` the final chunk of the list is the payload's last chunk.
    """
    view = memoryview(out)
    pos = 0
    final = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        end = pos + len(chunk) + TAG_SIZE
        aead.encrypt_into(
            _chunk_nonce(counter + i, last and i == final), chunk, None, view[pos:end]
        )
        pos = end
    return pos


class StreamWriter(io.RawIOBase):
    """Encrypts what is written to it and writes the chunks to ``dst``.

    ``close()`` writes the final chunk; it must be called (or the writer used as a
    context manager), otherwise the payload is truncated and will not unseal. Data
    written as ``bytes`` is encrypted from where it lies; anything mutable is copied.
    """

    def __init__(self, dst: Writable, key: bytes) -> None:
        super().__init__()
        self._dst = dst
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0  # number of the first chunk in _full
        self._full: list[memoryview] = []  # whole chunks not yet handed to a job
        self._partial = bytearray()  # the chunk being filled, shorter than CHUNK_SIZE
        self._jobs: deque[tuple[Job, bytearray]] = deque()
        self._spare: list[bytearray] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer, /) -> int:
        if self.closed:
            raise ValueError("write to a closed sealed stream")
        view = memoryview(data).cast("B")
        n = len(view)
        if type(view.obj) is not bytes and n >= CHUNK_SIZE:
            view = memoryview(view.tobytes())  # the caller may reuse its buffer
        if self._partial:
            take = CHUNK_SIZE - len(self._partial)
            self._partial += view[:take]
            view = view[take:]
            if len(self._partial) < CHUNK_SIZE:
                return n
            self._full.append(memoryview(self._partial))
            self._partial = bytearray()
        whole = len(view) - len(view) % CHUNK_SIZE
        for start in range(0, whole, CHUNK_SIZE):
            self._full.append(view[start : start + CHUNK_SIZE])
            self._submit_ready()
        self._partial += view[whole:]
        self._submit_ready()
        return n

    def _submit_ready(self) -> None:
        # A chunk can only be sealed as "not last" once a byte beyond it is known.
        while len(self._full) > BATCH_CHUNKS or (len(self._full) == BATCH_CHUNKS and self._partial):
            batch = self._full[:BATCH_CHUNKS]
            del self._full[:BATCH_CHUNKS]
            self._submit(batch, last=False, run=run_pooled)

    def _submit(self, chunks: list[memoryview], last: bool, run: Callable[..., Job]) -> None:
        size = sum(len(c) for c in chunks) + TAG_SIZE * len(chunks)
        out = self._spare.pop() if self._spare else bytearray(size)
        if len(out) < size:
            out = bytearray(size)
        self._jobs.append((run(_seal_batch, self._aead, chunks, self._counter, last, out), out))
        self._counter += len(chunks)
        self._drain(IN_FLIGHT)

    def _drain(self, keep: int) -> None:
        while len(self._jobs) > keep:
            job, out = self._jobs.popleft()
            _write_all(self._dst, memoryview(out)[: job.result()])
            self._spare.append(out)

    def close(self) -> None:
        if not self.closed:
            try:
                chunks = self._full
                if self._partial or not chunks:
                    chunks.append(memoryview(self._partial))
                self._full = []
                self._submit(chunks, last=True, run=run_inline)
                self._drain(0)
            finally:
                self._jobs.clear()
                self._spare.clear()
                super().close()


# --- opening ---------------------------------------------------------------------------

_MORE, _DONE, _FAILED, _LAST_AT_END = range(4)


class _Batch:
    """Ciphertext read for one job (up to ``chunks`` chunks), and where its plaintext goes."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.cipher = bytearray(chunks * ENC_CHUNK_SIZE)
        self.plain = bytearray(chunks * CHUNK_SIZE)
        self.size = 0  # ciphertext bytes read
        self.at_end = False  # the input ended within this batch
        self.failure: BaseException | None = None  # the input failed after ``size`` bytes


def _open_batch(
    aead: ChaCha20Poly1305, batch: _Batch, counter: int
) -> tuple[int, int, BaseException | None, int]:
    """Authenticate and decrypt the chunks of ``batch``, numbered from ``counter``.

    Returns (plaintext bytes that may be released, outcome, error, length of the last
    chunk's plaintext). Chunk by chunk this does what reading the payload one chunk at a
    time would; what follows the batch is the caller's to judge (``_LAST_AT_END``).
    """
    data = memoryview(batch.cipher)[: batch.size]
    out = memoryview(batch.plain)
    # A read failure mid-chunk loses that chunk, as a failing read of it would.
    usable = batch.size - batch.size % ENC_CHUNK_SIZE if batch.failure else batch.size
    pos = released = 0
    try:
        while pos < usable:
            chunk = data[pos : min(pos + ENC_CHUNK_SIZE, usable)]
            if len(chunk) < TAG_SIZE:
                raise PayloadError("payload is truncated: chunk %d is too short" % counter)
            # A short chunk can only be the last. A full one is normally not, but may be
            # the last when the payload is an exact multiple of 64 KiB.
            last = len(chunk) < ENC_CHUNK_SIZE
            size = len(chunk) - TAG_SIZE
            target = out[released : released + size]
            try:
                aead.decrypt_into(_chunk_nonce(counter, last), chunk, None, target)
            except InvalidTag:
                if last:
                    raise PayloadError(
                        "payload was altered or truncated: chunk %d failed authentication" % counter
                    ) from None
                last = True
                try:
                    aead.decrypt_into(_chunk_nonce(counter, True), chunk, None, target)
                except InvalidTag:
                    raise PayloadError(
                        "payload was altered or truncated: chunk %d failed authentication" % counter
                    ) from None
            if last and not size and counter > 0:
                raise PayloadError("payload is malformed: the final chunk is empty")
            counter += 1
            pos += len(chunk)
            if last:
                if pos < batch.size:
                    # The final chunk authenticated and is released; the failure comes on
                    # the next read, as the reference implementation behaves.
                    return (
                        released + size,
                        _FAILED,
                        PayloadError("payload is malformed: data after the final chunk"),
                        size,
                    )
                if batch.at_end:
                    return released + size, _DONE, None, size
                if batch.failure:
                    # Whether anything follows could not be read: the chunk is withheld.
                    return released, _FAILED, batch.failure, size
                return released + size, _LAST_AT_END, None, size
            released += size
    except PayloadError as exc:
        return released, _FAILED, exc, 0
    if batch.failure:
        return released, _FAILED, batch.failure, 0
    if batch.at_end:
        return (
            released,
            _FAILED,
            PayloadError(
                "payload is truncated: no chunks"
                if counter == 0
                else "payload is truncated: the final chunk is missing"
            ),
            0,
        )
    return released, _MORE, None, 0


class StreamReader(io.RawIOBase):
    """Decrypts chunks from ``src`` and releases plaintext only after its tag verifies.

    ``stanza_index`` is set by :func:`crypto.unseal`: which header stanza opened it.
    """

    stanza_index: int | None = None

    def __init__(self, src: Source, key: bytes) -> None:
        super().__init__()
        self._src = src
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0  # number of the first chunk of the next batch to read
        self._next_chunks = 1  # batches grow to BATCH_CHUNKS: small items stay small
        self._input_over = False  # end of input, or a read failure, was reached
        self._jobs: deque[tuple[Job, _Batch]] = deque()
        self._spare: list[_Batch] = []
        self._batch: _Batch | None = None  # whose plaintext is being released
        self._plain = memoryview(b"")
        self._pos = 0
        self._done = False
        self._error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def _available(self) -> int:
        """Plaintext bytes ready to release; 0 only at the end. Raises a payload failure."""
        if self.closed:
            raise ValueError("read from a closed sealed stream")
        while self._pos >= len(self._plain):
            if self._error is not None:
                raise self._error
            if self._done:
                return 0
            self._next_batch()
        return len(self._plain) - self._pos

    def readinto(self, buffer: Buffer, /) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._available())
        view[:n] = self._plain[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        n = min(size, self._available())
        out = self._plain[self._pos : self._pos + n].tobytes()
        self._pos += n
        return out

    def readall(self) -> bytes:
        parts = []
        while self._available():
            parts.append(self._plain[self._pos :].tobytes())
            self._pos = len(self._plain)
        return b"".join(parts)

    def copy_to(self, dst: Writable) -> int:
        """Write the rest of the plaintext to ``dst``; returns how many bytes.

        Like reading to the end and writing each piece, without copying it in between:
        ``dst.write`` gets views of authenticated plaintext that are reused once it
        returns. Fails as :meth:`read` does, after writing everything released before.
        """
        total = 0
        while n := self._available():
            view = self._plain[self._pos : self._pos + n]
            self._pos += n
            _write_all(dst, view)
            total += n
        return total

    def close(self) -> None:
        self._jobs.clear()
        self._spare.clear()
        self._batch = None
        self._plain = memoryview(b"")
        super().close()

    def _read_batch(self) -> _Batch:
        chunks = self._next_chunks
        self._next_chunks = min(2 * chunks, BATCH_CHUNKS)
        batch = self._spare.pop() if self._spare else _Batch(chunks)
        if batch.chunks != chunks:
            batch = _Batch(chunks)
        batch.at_end, batch.failure = False, None
        try:
            batch.size = self._src.readinto(batch.cipher)
            batch.at_end = batch.size < len(batch.cipher)
        except Exception as exc:  # e.g. broken armor: what arrived before it still counts
            kept = min(self._src.buffered, len(batch.cipher))
            batch.size = self._src.readinto(memoryview(batch.cipher)[:kept])
            batch.failure = exc
        self._input_over = batch.at_end or batch.failure is not None
        return batch

    def _fill(self) -> None:
        while not self._input_over and len(self._jobs) < IN_FLIGHT:
            batch = self._read_batch()
            # The first, smaller batches and the last one are opened by this thread.
            full = batch.chunks == BATCH_CHUNKS and not self._input_over
            run = run_pooled if full else run_inline
            self._jobs.append((run(_open_batch, self._aead, batch, self._counter), batch))
            self._counter += batch.chunks

    def _next_batch(self) -> None:
        if self._batch is not None:
            self._spare.append(self._batch)
            self._batch = None
        self._fill()
        job, batch = self._jobs.popleft()
        released, outcome, error, last_size = job.result()
        if outcome == _LAST_AT_END:
            # The final chunk ended a full batch: judge what follows it.
            if not self._jobs:
                self._fill()
            after = self._jobs[0][1]
            if after.size == 0 and after.failure is None:
                outcome = _DONE
            elif after.size:
                outcome, error = (
                    _FAILED,
                    PayloadError("payload is malformed: data after the final chunk"),
                )
            else:
                outcome, error, released = _FAILED, after.failure, released - last_size
        self._batch = batch
        self._plain = memoryview(batch.plain)[:released]
        self._pos = 0
        if outcome != _MORE:
            self._done = outcome == _DONE
            self._error = error
            self._jobs.clear()  # read ahead past the end: never used
