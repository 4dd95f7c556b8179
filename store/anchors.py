"""Signed anchors of the audit chain, kept off the server.

An anchor is a small JSON file anyone can read and check::

    {"format": "testimony-anchor/1", "seq": 41, "hash": "<64 hex>", "day": "2024-05-02",
     "public_key": "<base64 Ed25519>", "signature": "<base64>"}

``seq`` and ``hash`` are the number and hash of the chain's head when the anchor was
taken, ``day`` the UTC date (the date only), ``public_key`` the instance's anchor key and
``signature`` Ed25519 over the canonical JSON of the other five fields (keys sorted, no
spaces, UTF-8). The anchor key lives in the instance folder (``anchor-key``, mode 0600);
the database never holds it. An anchor proves, to whoever kept it, that nothing at or
before ``seq`` was removed, reordered, edited or recomputed since: see
:func:`store.audit.verify`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import crypto

FORMAT = "testimony-anchor/1"
KEY_FILE = "anchor-key"
FIELDS = ("format", "seq", "hash", "day", "public_key")


class AnchorError(ValueError):
    """An anchor file or key that cannot be trusted; the message says why, in one line."""


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise AnchorError("not an Ed25519 public key (base64 of 32 bytes): %r" % text) from None


def key_path(instance_path: Path) -> Path:
    return instance_path / KEY_FILE


def load_key(instance_path: Path) -> Ed25519PrivateKey | None:
    """The instance's anchor key, or None when it was never made (or is not here)."""
    path = key_path(instance_path)
    if not path.exists():
        return None
    lines = [
        line.strip()
        for line in path.read_text(encoding="ascii").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(lines[-1], validate=True))
    except (IndexError, binascii.Error, ValueError):
        raise AnchorError("%s is not an anchor key" % path) from None


def ensure_key(instance_path: Path) -> Ed25519PrivateKey:
    """The instance's anchor key, made on first use (written once, never replaced)."""
    key = load_key(instance_path)
    if key is not None:
        return key
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    text = "# Testimony audit anchor key (Ed25519): signs the anchors of the audit chain.\n"
    text += "# public key: %s\n" % public_key_text(key.public_key())
    text += base64.b64encode(raw).decode() + "\n"
    instance_path.mkdir(parents=True, exist_ok=True)
    try:
        crypto.write_secret_file(str(key_path(instance_path)), text)
    except FileExistsError:
        pass  # another process made it a moment ago: use theirs
    loaded = load_key(instance_path)
    assert loaded is not None
    return loaded


def canonical(fields: dict[str, object]) -> bytes:
    """The bytes the signature covers: every field but the signature, sorted, compact."""
    body = {name: fields[name] for name in FIELDS}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def make(key: Ed25519PrivateKey, seq: int, head_hash: str, day: dt.date) -> str:
    """The text of a signed anchor of event ``seq`` whose hash is ``head_hash``."""
    fields: dict[str, object] = {
        "format": FORMAT,
        "seq": seq,
        "hash": head_hash,
        "day": day.isoformat(),
        "public_key": public_key_text(key.public_key()),
    }
    fields["signature"] = base64.b64encode(key.sign(canonical(fields))).decode()
    return json.dumps(fields, ensure_ascii=False, indent=2) + "\n"


@dataclass(frozen=True)
class Anchor:
    """A checked anchor: its signature verified against the trusted key."""

    label: str
    seq: int
    hash: str
    day: dt.date


def read(text: str, label: str, trusted: Ed25519PublicKey) -> Anchor:
    """Parse and check one anchor file's text against the ``trusted`` public key."""
    try:
        fields = json.loads(text)
    except ValueError:
        raise AnchorError("anchor %s: not JSON" % label) from None
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise AnchorError("anchor %s: not a %s file" % (label, FORMAT))
    seq, head_hash, day = fields.get("seq"), fields.get("hash"), fields.get("day")
    key, signature = fields.get("public_key"), fields.get("signature")
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 1
        or not isinstance(head_hash, str)
        or len(head_hash) != 64
        or any(c not in "0123456789abcdef" for c in head_hash)
        or not isinstance(day, str)
        or not isinstance(key, str)
        or not isinstance(signature, str)
    ):
        raise AnchorError("anchor %s: a field is missing or malformed" % label)
    try:
        on_day = dt.date.fromisoformat(day)
    except ValueError:
        raise AnchorError("anchor %s: day %r is not an ISO date" % (label, day)) from None
    if key != public_key_text(trusted):
        raise AnchorError(
            "anchor %s: signed by key %s, not the trusted anchor key %s"
            % (label, key, public_key_text(trusted))
        )
    try:
        trusted.verify(base64.b64decode(signature, validate=True), canonical(fields))
    except (InvalidSignature, binascii.Error, ValueError):
        raise AnchorError("anchor %s: bad signature (forged or altered)" % label) from None
    return Anchor(label=label, seq=seq, hash=head_hash, day=on_day)
