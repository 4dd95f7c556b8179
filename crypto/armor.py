"""ASCII armor: the age file as strict PEM (``-----BEGIN AGE ENCRYPTED FILE-----``).

Writing: standard padded base64 in 64-column lines, LF endings. Reading is strict in the
way the age specification asks: no headers inside the armor, every line but the last
exactly 64 columns, padding only at the very end, canonical base64; LF or CRLF endings;
whitespace is tolerated only before the begin line and after the end line. Both
directions stream line by line.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING

from .errors import ArmorError
from .format import Readable, Source, Writable

if TYPE_CHECKING:
    from typing_extensions import Buffer

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
COLUMNS = 64
_BYTES_PER_LINE = COLUMNS // 4 * 3
_WHITESPACE = b" \t\r\n"
_MAX_TRAILING = 1024


class ArmorWriter(io.RawIOBase):
    """Base64-encodes what is written into ``dst``; ``close()`` writes the end line."""

    def __init__(self, dst: Writable) -> None:
        super().__init__()
        self._dst = dst
        self._buf = bytearray()
        dst.write(BEGIN + b"\n")

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer, /) -> int:
        size = memoryview(data).nbytes
        self._buf += data
        whole = len(self._buf) // _BYTES_PER_LINE * _BYTES_PER_LINE
        if whole:
            encoded = base64.b64encode(bytes(self._buf[:whole]))
            del self._buf[:whole]
            self._dst.write(
                b"".join(encoded[i : i + COLUMNS] + b"\n" for i in range(0, len(encoded), COLUMNS))
            )
        return size

    def close(self) -> None:
        if not self.closed:
            if self._buf:
                self._dst.write(base64.b64encode(bytes(self._buf)) + b"\n")
            self._dst.write(END + b"\n")
            super().close()


class ArmorReader(io.RawIOBase):
    """Decodes an armored age file from ``src`` as it is read."""

    def __init__(self, src: Readable) -> None:
        super().__init__()
        self._src = src if isinstance(src, Source) else Source(src)
        self._out = b""
        self._pos = 0
        self._started = False
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer, /) -> int:
        view = memoryview(buffer).cast("B")
        while self._pos >= len(self._out):
            if self._finished:
                return 0
            self._out = self._next_line()
            self._pos = 0
        n = min(len(view), len(self._out) - self._pos)
        view[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def _line(self) -> bytes:
        line = self._src.readline(COLUMNS + 3)
        if line.endswith(b"\r\n"):
            return line[:-2]
        if line.endswith(b"\n"):
            return line[:-1]
        if len(line) > COLUMNS + 1:
            raise ArmorError("armor line is longer than 64 columns")
        return line  # last line without an end-of-line; checked by the caller

    def _begin(self) -> None:
        while True:
            byte = self._src.peek(1)
            if not byte:
                raise ArmorError("armor begin line not found")
            if byte not in _WHITESPACE:
                break
            self._src.read(1)
        raw = self._src.readline(len(BEGIN) + 2)
        if raw.rstrip(b"\r\n") != BEGIN or not raw.endswith(b"\n"):
            raise ArmorError("malformed armor begin line")
        self._started = True

    def _next_line(self) -> bytes:
        if not self._started:
            self._begin()
        line = self._line()
        if line == END:
            self._finish()
            return b""
        if not line:
            raise ArmorError("empty line inside the armor")
        if len(line) > COLUMNS:
            raise ArmorError("armor line is longer than 64 columns")
        try:
            data = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ArmorError("invalid base64 in the armor") from None
        if base64.b64encode(data) != line:
            raise ArmorError("base64 in the armor is not canonical")
        if len(line) < COLUMNS or line.endswith(b"="):
            # A short (or padded) line is the last: the end line must follow.
            if self._line() != END:
                raise ArmorError("armor end line missing after the last short line")
            self._finish()
        return data

    def _finish(self) -> None:
        rest = self._src.read(_MAX_TRAILING + 1)
        if len(rest) > _MAX_TRAILING or rest.strip(_WHITESPACE):
            raise ArmorError("unexpected data after the armor end line")
        self._finished = True


def is_armored(start: bytes) -> bool:
    """Whether a file starting with ``start`` should be read as armored."""
    stripped = start.lstrip(_WHITESPACE)
    return stripped[:1] == b"-" or (not stripped and bool(start))
