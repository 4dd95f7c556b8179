"""Key types, and parsing recipient and identity strings and files whatever their type.

Every key type Testimony knows is one :class:`KeyType` in the registry (:func:`key_types`,
:func:`key_type`), so nothing outside this package needs to look at key prefixes or stanza
type strings itself:

``x25519``
    Recipient ``age1…`` (:class:`~crypto.x25519.X25519Recipient`), identity
    ``AGE-SECRET-KEY-1…`` (:class:`~crypto.x25519.X25519Identity`), stanza ``X25519``.
    Classic: a future quantum computer could unwrap its stanzas. Bech32, 32-byte keys.
``mlkem768x25519``
    Recipient ``age1pq1…`` (:class:`~crypto.mlkem768x25519.HybridRecipient`, 1959
    characters), identity ``AGE-SECRET-KEY-PQ-1…``
    (:class:`~crypto.mlkem768x25519.HybridIdentity`, a 32-byte seed), stanza
    ``mlkem768x25519``. Post-quantum: ML-KEM-768 and X25519 together (X-Wing in HPKE).
``scrypt``
    A passphrase (:class:`~crypto.scrypt.ScryptRecipient` /
    :class:`~crypto.scrypt.ScryptIdentity`), stanza ``scrypt``. It has no key string, so
    :func:`key_kind` never returns it, and it must be an item's only recipient.

Every recipient and identity class has ``post_quantum`` (True only for the hybrid type),
and every identity a ``recipient`` property. A file is only as strong as its weakest
stanza, so sealing one item to post-quantum and classic recipients together is refused
unless asked for (:class:`~crypto.errors.MixedRecipientsError`, as age refuses it).

Files follow age's conventions: one key a line, blank lines and ``#`` comments ignored.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Protocol

from .errors import KeyFormatError, MixedRecipientsError
from .format import Stanza
from .scrypt import ScryptIdentity, ScryptRecipient
from .x25519 import X25519Identity, X25519Recipient


class Recipient(Protocol):
    """Anything that can wrap a file key into stanzas."""

    @property
    def post_quantum(self) -> bool:
        """Whether its stanzas stay secret against a quantum computer."""
        ...

    def wrap(self, file_key: bytes) -> list[Stanza]: ...


class Identity(Protocol):
    """Anything that can find its stanza and unwrap the file key (None: not ours)."""

    @property
    def recipient(self) -> Recipient:
        """The recipient whose stanzas this identity unwraps."""
        ...

    @property
    def post_quantum(self) -> bool: ...

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None: ...


@dataclass(frozen=True)
class KeyType:
    """What is known about one key type: its names, prefixes, classes and strength."""

    kind: str  # what key_kind() returns: "x25519", "mlkem768x25519", "scrypt"
    stanza_type: str  # the stanza type written in headers: "X25519", "mlkem768x25519"
    post_quantum: bool
    recipient_class: type
    identity_class: type
    recipient_prefix: str | None = None  # None: no key string (a passphrase)
    identity_prefix: str | None = None
    parse_recipient: Callable[[str], Recipient] | None = None
    parse_identity: Callable[[str], Identity] | None = None


_KEY_TYPES: dict[str, KeyType] = {}


def register(key_type: KeyType) -> None:
    """Add a key type to the registry (each module registers its own)."""
    _KEY_TYPES[key_type.kind] = key_type


def key_types() -> list[KeyType]:
    """Every registered key type."""
    return list(_KEY_TYPES.values())


def _by_prefix(text: str) -> tuple[KeyType, bool] | None:
    """The key type whose prefix ``text`` has (longest first), and whether it is a
    recipient (False: an identity). Recipients are lowercase Bech32, identities upper."""
    lower, upper = text.lower(), text.upper()
    found: list[tuple[int, KeyType, bool]] = []
    for kt in _KEY_TYPES.values():
        if kt.recipient_prefix and lower.startswith(kt.recipient_prefix):
            found.append((len(kt.recipient_prefix), kt, True))
        if kt.identity_prefix and upper.startswith(kt.identity_prefix):
            found.append((len(kt.identity_prefix), kt, False))
    if not found:
        return None
    _, kt, is_recipient = max(found, key=lambda item: item[0])
    return kt, is_recipient


def key_kind(text: str) -> str:
    """The kind of a recipient or identity string: ``"x25519"`` or ``"mlkem768x25519"``.

    Decided by the prefix alone (``age1…``, ``age1pq1…``, ``AGE-SECRET-KEY-1…``,
    ``AGE-SECRET-KEY-PQ-1…``); the key itself is not checked (:func:`parse_recipient`
    does that). Raises :class:`~crypto.errors.KeyFormatError` for anything else, without
    echoing the text, which may be a secret key.
    """
    found = _by_prefix(text.strip())
    if found is None:
        raise KeyFormatError("unknown key type (expected age1… or AGE-SECRET-KEY-…)")
    return found[0].kind


def key_type(key: object) -> KeyType:
    """The :class:`KeyType` of a kind name, a key string, or a recipient or identity."""
    if isinstance(key, str):
        if key in _KEY_TYPES:
            return _KEY_TYPES[key]
        return _KEY_TYPES[key_kind(key)]
    for kt in _KEY_TYPES.values():
        if isinstance(key, (kt.recipient_class, kt.identity_class)):
            return kt
    raise KeyFormatError("unknown key type: %s" % type(key).__name__)


def stanza_type(key: object) -> str:
    """The stanza type written in headers for a key: ``"X25519"``, ``"mlkem768x25519"``
    (or ``"scrypt"``). ``key`` is a kind name (``"x25519"``), a recipient or identity
    string (``"age1…"``), or a recipient or identity object."""
    return key_type(key).stanza_type


def is_post_quantum(key: object) -> bool:
    """Whether a key (as :func:`stanza_type` takes it) is post-quantum."""
    return key_type(key).post_quantum


def _stanza_post_quantum(stanza_type_name: str) -> bool | None:
    for kt in _KEY_TYPES.values():
        if kt.stanza_type == stanza_type_name:
            return kt.post_quantum
    return None  # unknown (a plugin's, or grease): judged by nobody here


def check_not_mixed(recipients: Iterable[Recipient], stanzas: Iterable[Stanza] = ()) -> None:
    """Raise :class:`~crypto.errors.MixedRecipientsError` if ``recipients`` and the
    existing ``stanzas`` together are both post-quantum and classic."""
    kinds = {bool(getattr(r, "post_quantum", False)) for r in recipients}
    for stanza in stanzas:
        pq = _stanza_post_quantum(stanza.type)
        if pq is not None:
            kinds.add(pq)
    if len(kinds) > 1:
        raise MixedRecipientsError()


register(
    KeyType(
        kind="x25519",
        stanza_type="X25519",
        post_quantum=False,
        recipient_class=X25519Recipient,
        identity_class=X25519Identity,
        recipient_prefix="age1",
        identity_prefix="AGE-SECRET-KEY-1",
        parse_recipient=X25519Recipient.parse,
        parse_identity=X25519Identity.parse,
    )
)
register(
    KeyType(
        kind="scrypt",
        stanza_type="scrypt",
        post_quantum=False,
        recipient_class=ScryptRecipient,
        identity_class=ScryptIdentity,
    )
)


def parse_recipient(text: str) -> Recipient:
    text = text.strip()
    found = _by_prefix(text)
    if found is not None and found[1] and found[0].parse_recipient is not None:
        return found[0].parse_recipient(text)
    raise KeyFormatError("unknown recipient type: %r" % text[:12])


def parse_identity(text: str) -> Identity:
    text = text.strip()
    found = _by_prefix(text)
    if found is not None and not found[1] and found[0].parse_identity is not None:
        return found[0].parse_identity(text)
    raise KeyFormatError("unknown identity type (expected AGE-SECRET-KEY-…)")


def _key_lines(text: str) -> Iterable[tuple[int, str]]:
    # Numbered as age numbers them: by LF, a CR before it ignored.
    for number, line in enumerate(text.split("\n"), 1):
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
    """The identities in the text of an identity file (see :func:`read_identities`)."""
    out = []
    for number, line in _key_lines(text):
        try:
            out.append(parse_identity(line))
        except KeyFormatError as exc:
            found = _by_prefix(line)
            reason = str(exc)
            if found is not None and found[1]:
                reason = "apparent recipient found in identities file"
            # The line itself is never quoted: it may be a damaged secret key.
            raise KeyFormatError("identity file line %d: %s" % (number, reason)) from None
    if not out:
        raise KeyFormatError("no identities in the identity file")
    return out


MAX_IDENTITY_FILE = 1 << 24  # 16 MiB, as age reads at most


def read_identities(
    path: str | os.PathLike[str], *, stdin: BinaryIO | None = None
) -> list[Identity]:
    """Read an identity file as ``age -i`` does: one identity a line, either key kind,
    blank lines and ``#`` comments skipped. ``"-"`` reads standard input (``stdin``,
    default ``sys.stdin.buffer``).

    A line that is not an identity raises :class:`~crypto.errors.KeyFormatError` naming
    the file and the line number, never the line: it may be a damaged secret key. So do
    a file that is not UTF-8, larger than 16 MiB, holds no identity, or is itself
    age-encrypted (a passphrase-protected identity file: decrypt it first). A file that
    cannot be read raises the ``OSError``.
    """
    name = os.fspath(path)
    if name == "-":
        source = stdin if stdin is not None else sys.stdin.buffer
        raw = source.read(MAX_IDENTITY_FILE + 1)
        label = "standard input"
    else:
        with open(name, "rb") as handle:
            raw = handle.read(MAX_IDENTITY_FILE + 1)
        label = name
    if len(raw) > MAX_IDENTITY_FILE:
        raise KeyFormatError("%s: identity file is too long" % label)
    if raw.startswith((b"age-encryption.org/", b"-----BEGIN AGE")):
        raise KeyFormatError(
            "%s: an encrypted identity file is not supported here; decrypt it first" % label
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFormatError("%s: identity file is not valid UTF-8" % label) from None
    try:
        return parse_identities_file(text)
    except KeyFormatError as exc:
        raise KeyFormatError("%s: %s" % (label, exc)) from None


def identity_file_text(identity: object, recipient: object) -> str:
    """The text of an identity file in age-keygen's layout."""
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    return "# created: %s\n# public key: %s\n%s\n" % (created, recipient, identity)


def write_secret_file(path: str, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to a new file ``path`` readable by the owner only,
    atomically.

    Never replaces an existing file, even one created a moment ago by another process:
    the finished file is hard-linked into place, which fails if the name is taken
    (``FileExistsError``). An identity is never overwritten by mistake.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".key-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
