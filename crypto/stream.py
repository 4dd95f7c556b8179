"""The age payload: STREAM over ChaCha20-Poly1305 in 64 KiB chunks.

The payload key comes from the file key and a random 16-byte nonce written right after
the header. Chunk *i* is sealed with the nonce ``i`` (11 bytes, big-endian) followed by a
flag byte that is 1 only on the last chunk, so truncation and reordering are detected.
Only the last chunk may be shorter than 64 KiB, and it may be empty only if the whole
payload is. Both directions hold at most two chunks in memory, whatever the size.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import PayloadError
from .format import Source, hkdf

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENC_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16
_MAX_COUNTER = (1 << 88) - 1


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return hkdf(file_key, nonce, b"payload")


def _chunk_nonce(counter: int, last: bool) -> bytes:
    if counter > _MAX_COUNTER:
        raise PayloadError("payload is too long: chunk counter overflow")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class StreamWriter(io.RawIOBase):
    """Encrypts what is written to it and writes the chunks to ``dst``.

    ``close()`` writes the final chunk; it must be called (or the writer used as a
    context manager), otherwise the payload is truncated and will not unseal.
    """

    def __init__(self, dst: BinaryIO, key: bytes) -> None:
        super().__init__()
        self._dst = dst
        self._aead = ChaCha20Poly1305(key)
        self._buf = bytearray()
        self._counter = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed sealed stream")
        view = memoryview(data).cast("B")
        n = len(view)
        # A chunk can only be sealed as "not last" once a byte beyond it is known.
        while len(self._buf) + len(view) > CHUNK_SIZE:
            if self._buf:
                take = CHUNK_SIZE - len(self._buf)
                self._buf += view[:take]
                view = view[take:]
                self._seal(bytes(self._buf), last=False)
                self._buf.clear()
            else:
                self._seal(view[:CHUNK_SIZE], last=False)
                view = view[CHUNK_SIZE:]
        self._buf += view
        return n

    def _seal(self, chunk: bytes | memoryview, last: bool) -> None:
        nonce = _chunk_nonce(self._counter, last)
        self._dst.write(self._aead.encrypt(nonce, bytes(chunk), None))
        self._counter += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buf), last=True)
            self._buf.clear()
            super().close()


class StreamReader(io.RawIOBase):
    """Decrypts chunks from ``src`` and releases plaintext only after its tag verifies."""

    def __init__(self, src: Source, key: bytes) -> None:
        super().__init__()
        self._src = src
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0
        self._plain = b""
        self._pos = 0
        self._done = False
        self._error: PayloadError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._plain):
            if self._done:
                return 0
            self._plain = self._next_chunk()
            self._pos = 0
        n = min(len(buffer), len(self._plain) - self._pos)
        memoryview(buffer)[:n] = self._plain[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        if size is None or size < 0:
            return self.readall()
        return super().read(size) or b""

    def readall(self) -> bytes:
        parts = []
        if self._pos < len(self._plain):
            parts.append(self._plain[self._pos :])
        self._pos = len(self._plain)
        while not self._done:
            parts.append(self._next_chunk())
        self._plain = b""
        self._pos = 0
        return b"".join(parts)

    def _next_chunk(self) -> bytes:
        if self._error:
            raise self._error
        try:
            return self._decrypt_next()
        except PayloadError as exc:
            self._error = exc
            self._done = True
            raise

    def _decrypt_next(self) -> bytes:
        chunk = self._src.read(ENC_CHUNK_SIZE)
        if not chunk:
            raise PayloadError(
                "payload is truncated: no chunks" if self._counter == 0
                else "payload is truncated: the final chunk is missing"
            )
        if len(chunk) < TAG_SIZE:
            raise PayloadError("payload is truncated: chunk %d is too short" % self._counter)
        # A short chunk can only be the last. A full one is normally not, but may be
        # the last when the payload is an exact multiple of 64 KiB.
        last = len(chunk) < ENC_CHUNK_SIZE
        try:
            plain = self._aead.decrypt(_chunk_nonce(self._counter, last), chunk, None)
        except InvalidTag:
            plain = None
            if not last:
                last = True
                try:
                    plain = self._aead.decrypt(_chunk_nonce(self._counter, True), chunk, None)
                except InvalidTag:
                    pass
            if plain is None:
                raise PayloadError(
                    "payload was altered or truncated: chunk %d failed authentication"
                    % self._counter
                ) from None
        if last and not plain and self._counter > 0:
            raise PayloadError("payload is malformed: the final chunk is empty")
        self._counter += 1
        if last and self._src.peek(1):
            # The final chunk authenticated and is released; the caller then sees the
            # failure on its next read, as the reference implementation behaves.
            self._error = PayloadError("payload is malformed: data after the final chunk")
        else:
            self._done = last
        return plain
