"""Where uploads go while a request is being received, without plaintext touching disk.

Werkzeug spools large uploads to an ordinary temporary file, in plaintext, until the
request ends: a seized or imaged server would keep those bytes in free disk blocks. This
spool seals each upload as it arrives (an age file, ChaCha20-Poly1305 STREAM) to a fresh
X25519 key that exists only in this process's memory, into an anonymous temporary file
that has no name on disk. When the request ends the key is gone, and with it any way to
read what reached the disk.

It also enforces the per-file and per-submission caps while receiving: bytes beyond a
cap are counted and dropped, not stored, so the form's text fields still arrive and the
witness gets a clear message with everything they typed kept.

Misuse to avoid: reading before the upload is complete, or keeping a spool beyond the
request (its key dies with the object).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import crypto

if TYPE_CHECKING:
    from typing_extensions import Buffer

HEAD_BYTES = 4096


@dataclass
class UploadBudget:
    """What all uploads of one request may still use."""

    per_file: int
    remaining: int
    exceeded_total: bool = False
    spools: list[SealedSpool] = field(default_factory=list)


class SealedSpool(io.RawIOBase):
    """A write-once, read-once spool for one upload, encrypted under an ephemeral key."""

    def __init__(self, budget: UploadBudget, directory: str | None = None) -> None:
        super().__init__()
        self._budget = budget
        self._key: crypto.X25519Identity | None = crypto.X25519Identity.generate()
        self._file = tempfile.TemporaryFile(dir=directory)  # unlinked at once on POSIX
        self._writer: io.RawIOBase | None = crypto.seal(self._file, [self._key.recipient])
        self._reader: crypto.StreamReader | None = None
        self.size = 0  # bytes received, including any beyond a cap
        self.stored = 0  # bytes kept
        self.too_large = False
        self.head = b""
        self._sha256 = hashlib.sha256()
        budget.spools.append(self)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the kept bytes (only meaningful when nothing was dropped)."""
        return self._sha256.hexdigest()

    def writable(self) -> bool:
        return self._writer is not None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Buffer, /) -> int:
        if self._writer is None:
            raise ValueError("the upload is already complete")
        view = memoryview(data).cast("B")
        n = len(view)
        self.size += n
        if self.too_large:
            return n
        if self.stored + n > self._budget.per_file:
            self.too_large = True
        elif n > self._budget.remaining:
            self.too_large = True
            self._budget.exceeded_total = True
        if self.too_large:
            return n
        if len(self.head) < HEAD_BYTES:
            self.head += bytes(view[: HEAD_BYTES - len(self.head)])
        self._sha256.update(data)
        self._writer.write(data)
        self.stored += n
        self._budget.remaining -= n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only ``seek(0)`` is supported: it ends writing and rewinds for reading."""
        if offset != 0 or whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a sealed spool can only be rewound")
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._file.flush()
        self._file.seek(0)
        if self._key is None:
            raise ValueError("the spool is closed")
        self._reader = crypto.unseal(self._file, [self._key], armor=False)
        return 0

    def tell(self) -> int:
        return self.stored if self._writer is not None else 0

    def readinto(self, buffer: Buffer, /) -> int:
        if self._reader is None:
            self.seek(0)
        assert self._reader is not None
        return self._reader.readinto(buffer)

    def read(self, size: int = -1) -> bytes:
        if self._reader is None:
            self.seek(0)
        assert self._reader is not None
        return self._reader.read(size)

    def close(self) -> None:
        if not self.closed:
            self._key = None
            self._writer = None
            self._reader = None
            self._file.close()
            super().close()
