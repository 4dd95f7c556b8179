"""The age v1 header: stanzas, parsing, marshalling and the header MAC.

A header is the text line ``age-encryption.org/v1``, one or more recipient stanzas
(``-> TYPE ARG…`` followed by a base64 body wrapped at 64 columns, always ending in a
line shorter than 64 columns), and a footer ``--- MAC``. Parsing is strict: lines end in
LF only, base64 is unpadded and canonical, and anything unexpected is a
:class:`HeaderError`. The raw bytes up to and including ``---`` are kept so the MAC is
checked over exactly what was read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass, field
from hashlib import sha256
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import HeaderError, HeaderMACError

if TYPE_CHECKING:
    from typing_extensions import Buffer


class Readable(Protocol):
    """What sealed data is read from: a binary file, a pipe, ``BytesIO``, a socket file,
    an :class:`~crypto.armor.ArmorReader` or a :class:`Source`."""

    def read(self, size: int, /) -> bytes | None: ...


class Writable(Protocol):
    """What sealed data is written to: anything with a binary ``write``."""

    def write(self, data: Buffer, /) -> int | None: ...


VERSION_LINE = b"age-encryption.org/v1"
FILE_KEY_SIZE = 16
COLUMNS = 64
# Generous for every stanza type in use (a post-quantum stanza argument is ~1.5 KB),
# small enough that a hostile header cannot make a reader buffer without bound.
MAX_LINE = 16 * 1024
MAX_HEADER = 1024 * 1024


def b64encode(data: bytes) -> str:
    """Standard base64 without padding, as age writes it."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str | bytes) -> bytes:
    """Decode unpadded, canonical standard base64; raise HeaderError otherwise."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise HeaderError("invalid base64: non-ASCII character") from None
    else:
        raw = bytes(text)
    if b"=" in raw or b"\r" in raw or b"\n" in raw:
        raise HeaderError("invalid base64: padding or line break present")
    if len(raw) % 4 == 1:
        raise HeaderError("invalid base64: impossible length")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise HeaderError("invalid base64: bad character") from None
    if b64encode(data).encode("ascii") != raw:
        raise HeaderError("invalid base64: not canonical")
    return data


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


@dataclass
class Stanza:
    """One recipient stanza: a type, its arguments, and a binary body."""

    type: str
    args: list[str] = field(default_factory=list)
    body: bytes = b""

    def marshal(self) -> bytes:
        line = " ".join(["->", self.type, *self.args]).encode("ascii") + b"\n"
        encoded = b64encode(self.body).encode("ascii")
        lines = [encoded[i : i + COLUMNS] for i in range(0, len(encoded), COLUMNS)]
        if not lines or len(lines[-1]) == COLUMNS:
            lines.append(b"")
        return line + b"".join(chunk + b"\n" for chunk in lines)


@dataclass
class Header:
    """A parsed header. ``raw`` is the exact text up to and including ``---``."""

    stanzas: list[Stanza]
    mac: bytes
    raw: bytes

    def verify_mac(self, file_key: bytes) -> None:
        if not hmac.compare_digest(header_mac(file_key, self.raw), self.mac):
            raise HeaderMACError("bad header MAC: the header was altered or the key is wrong")

    def marshal(self) -> bytes:
        return self.raw + b" " + b64encode(self.mac).encode("ascii") + b"\n"

    def fingerprint(self) -> str:
        """SHA-256 of the marshalled header, for logs and audit records (reveals nothing)."""
        return sha256(self.marshal()).hexdigest()


def header_mac(file_key: bytes, header_text: bytes) -> bytes:
    key = hkdf(file_key, b"", b"header")
    return hmac.new(key, header_text, "sha256").digest()


def build_header(stanzas: list[Stanza], file_key: bytes) -> Header:
    """Lay out ``stanzas`` and compute the MAC with ``file_key``."""
    if not stanzas:
        raise HeaderError("a header needs at least one recipient stanza")
    raw = VERSION_LINE + b"\n" + b"".join(s.marshal() for s in stanzas) + b"---"
    return Header(stanzas=list(stanzas), mac=header_mac(file_key, raw), raw=raw)


_ARG = re.compile(rb"[\x21-\x7e]+")


def _valid_arg(arg: bytes) -> bool:
    """A stanza argument: one or more visible ASCII characters."""
    return _ARG.fullmatch(arg) is not None


class Source:
    """A small read-ahead buffer over any binary reader (files, pipes, BytesIO, sockets).

    The header is read line by line, and the payload reader then continues from exactly
    the first byte after it, so a plain ``read`` cannot be used for both. ``readinto``
    serves the payload: after the buffered bytes it reads straight into the caller's
    buffer, without copying through this one.
    """

    def __init__(self, raw: Readable, block: int = 64 * 1024) -> None:
        self._raw = raw
        self._buf = bytearray()
        self._eof = False
        self._block = block
        self._readinto = getattr(raw, "readinto", None)

    @property
    def buffered(self) -> int:
        """How many bytes can be read without reading from the underlying reader."""
        return len(self._buf)

    def _fill(self, want: int) -> None:
        while len(self._buf) < want and not self._eof:
            data = self._raw.read(max(want - len(self._buf), self._block))
            if not data:
                self._eof = True
            else:
                self._buf += data

    def _take(self, n: int) -> bytes:
        with memoryview(self._buf) as view:
            out = view[:n].tobytes()
        del self._buf[:n]
        return out

    def peek(self, n: int) -> bytes:
        self._fill(n)
        with memoryview(self._buf) as view:
            return view[:n].tobytes()

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at end of input."""
        self._fill(n)
        return self._take(n)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer``; fewer bytes only at end of input. Returns how many.

        If the underlying reader fails part-way, the bytes this call had read stay
        buffered here (see :attr:`buffered`) and the exception propagates.
        """
        view = memoryview(buffer).cast("B")
        pos = min(len(self._buf), len(view))
        if pos:
            with memoryview(self._buf) as held:
                view[:pos] = held[:pos]
            del self._buf[:pos]
        try:
            while pos < len(view) and not self._eof:
                got = self._raw_readinto(view[pos:])
                if not got:
                    self._eof = True
                pos += got
        except Exception:
            self._buf[:0] = view[:pos]
            raise
        return pos

    def _raw_readinto(self, view: memoryview) -> int:
        if self._readinto is not None:
            try:
                return self._readinto(view) or 0
            except NotImplementedError:  # a reader that only implements read()
                self._readinto = None
        data = self._raw.read(len(view)) or b""
        view[: len(data)] = data
        return len(data)

    def readline(self, limit: int = MAX_LINE) -> bytes:
        """One line including its LF, or what is left at end of input; at most ``limit``."""
        start = 0
        while True:
            idx = self._buf.find(b"\n", start)
            if idx >= 0 and idx < limit:
                return self.read(idx + 1)
            if len(self._buf) >= limit or self._eof:
                return self.read(limit)
            start = len(self._buf)
            self._fill(len(self._buf) + 1)


def parse_header(src: Source) -> Header:
    """Read a header from ``src``, leaving ``src`` at the first byte of the payload."""
    total = 0

    def line() -> bytes:
        nonlocal total
        text = src.readline(MAX_LINE)
        total += len(text)
        if total > MAX_HEADER:
            raise HeaderError("header is larger than %d bytes" % MAX_HEADER)
        if not text.endswith(b"\n"):
            raise HeaderError("unexpected end of header, or a header line is too long")
        return text

    raw = bytearray()
    first = line()
    if first != VERSION_LINE + b"\n":
        if first.startswith(b"age-encryption.org/"):
            raise HeaderError("unsupported age version: %r" % first.strip()[:64])
        raise HeaderError("not an age file: the first line is not the age v1 version line")
    raw += first
    stanzas: list[Stanza] = []
    while True:
        text = line()
        if text.startswith(b"--- ") or text.startswith(b"---\n"):
            if not stanzas:
                raise HeaderError("header has no recipient stanzas")
            mac_text = text[4:-1]
            if len(text) < 5 or len(mac_text) != 43:
                raise HeaderError("malformed header MAC line")
            mac = b64decode(mac_text)
            raw += b"---"
            return Header(stanzas=stanzas, mac=mac, raw=bytes(raw))
        if not text.startswith(b"-> "):
            raise HeaderError("malformed header: expected a stanza or the MAC line")
        raw += text
        parts = text[3:-1].split(b" ")
        if not all(_valid_arg(p) for p in parts):
            raise HeaderError("malformed stanza line: empty argument or invalid character")
        body = bytearray()
        while True:
            body_line = line()
            raw += body_line
            content = body_line[:-1]
            if len(content) > COLUMNS:
                raise HeaderError("stanza body line is longer than 64 columns")
            body += b64decode(content) if content else b""
            if len(content) < COLUMNS:
                break
        stanzas.append(
            Stanza(
                type=parts[0].decode("ascii"),
                args=[p.decode("ascii") for p in parts[1:]],
                body=bytes(body),
            )
        )
