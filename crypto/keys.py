"""Parsing recipient and identity strings and files, whatever their type.

Recipients are ``age1…`` (X25519); identities ``AGE-SECRET-KEY-1…``. Files follow age's
conventions: one key a line, blank lines and ``#`` comments ignored.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from .errors import KeyFormatError
from .format import Stanza
from .x25519 import X25519Identity, X25519Recipient


class Recipient(Protocol):
    """Anything that can wrap a file key into stanzas."""

    def wrap(self, file_key: bytes) -> list[Stanza]: ...


class Identity(Protocol):
    """Anything that can find its stanza and unwrap the file key (None: not ours)."""

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None: ...


_RECIPIENT_TYPES: list[tuple[str, type]] = [("age1", X25519Recipient)]
_IDENTITY_TYPES: list[tuple[str, type]] = [("AGE-SECRET-KEY-1", X25519Identity)]


def register(
    recipient_prefix: str, recipient_type: type, identity_prefix: str, identity_type: type
) -> None:
    """Add a key type; longer prefixes are matched first."""
    _RECIPIENT_TYPES.append((recipient_prefix, recipient_type))
    _IDENTITY_TYPES.append((identity_prefix, identity_type))
    _RECIPIENT_TYPES.sort(key=lambda item: -len(item[0]))
    _IDENTITY_TYPES.sort(key=lambda item: -len(item[0]))


def parse_recipient(text: str) -> Recipient:
    text = text.strip()
    for prefix, kind in _RECIPIENT_TYPES:
        if text.startswith(prefix):
            return kind.parse(text)  # type: ignore[no-any-return]
    raise KeyFormatError("unknown recipient type: %r" % text[:12])


def parse_identity(text: str) -> Identity:
    text = text.strip()
    for prefix, kind in _IDENTITY_TYPES:
        if text.upper().startswith(prefix):
            return kind.parse(text)  # type: ignore[no-any-return]
    raise KeyFormatError("unknown identity type (expected AGE-SECRET-KEY-…)")


def _key_lines(text: str) -> Iterable[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def parse_recipients_file(text: str) -> list[Recipient]:
    out = []
    for number, line in _key_lines(text):
        try:
            out.append(parse_recipient(line))
        except KeyFormatError as exc:
            raise KeyFormatError("recipients file line %d: %s" % (number, exc)) from None
    if not out:
        raise KeyFormatError("no recipients in the recipients file")
    return out


def parse_identities_file(text: str) -> list[Identity]:
    out = []
    for number, line in _key_lines(text):
        try:
            out.append(parse_identity(line))
        except KeyFormatError as exc:
            raise KeyFormatError("identity file line %d: %s" % (number, exc)) from None
    if not out:
        raise KeyFormatError("no identities in the identity file")
    return out


def identity_file_text(identity: object, recipient: object) -> str:
    """The text of an identity file in age-keygen's layout."""
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    return "# created: %s\n# public key: %s\n%s\n" % (created, recipient, identity)


def write_secret_file(path: str, text: str) -> None:
    """Write ``text`` to a new file ``path`` readable by the owner only, atomically.

    Never replaces an existing file, even one created a moment ago by another process:
    the finished file is hard-linked into place, which fails if the name is taken
    (``FileExistsError``). An identity is never overwritten by mistake.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".key-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
