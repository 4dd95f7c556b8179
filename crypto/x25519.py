"""X25519 recipients (``age1…``) and identities (``AGE-SECRET-KEY-1…``).

Sealing generates an ephemeral key per stanza; the stanza reveals only that ephemeral
share and the wrapped file key, never which public key it was made for.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from . import bech32
from .errors import HeaderError, KeyFormatError
from .format import FILE_KEY_SIZE, Stanza, b64decode, b64encode, hkdf

STANZA_TYPE = "X25519"
_INFO = b"age-encryption.org/v1/X25519"
_ZERO_NONCE = bytes(12)
RECIPIENT_HRP = "age"
IDENTITY_HRP = "AGE-SECRET-KEY-"


def wrap_key(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def unwrap_key(key: bytes, body: bytes) -> bytes | None:
    """The file key, or None when the tag does not verify (the stanza is not ours)."""
    if len(body) != FILE_KEY_SIZE + 16:
        raise HeaderError("invalid stanza body: the wrapped file key must be 16 bytes")
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _shared_secret(private: X25519PrivateKey, share: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        raise HeaderError("invalid X25519 share: low-order point") from None


class X25519Recipient:
    """A public key that file keys can be wrapped to."""

    post_quantum = False  # a quantum computer could unwrap its stanzas

    def __init__(self, public_bytes: bytes) -> None:
        if len(public_bytes) != 32:
            raise KeyFormatError("an X25519 public key is 32 bytes")
        self.public_bytes = public_bytes
        self._key = X25519PublicKey.from_public_bytes(public_bytes)

    @classmethod
    def parse(cls, text: str) -> X25519Recipient:
        hrp, data = bech32.decode(text)
        if hrp != RECIPIENT_HRP:
            raise KeyFormatError("not an age X25519 recipient (expected age1…)")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode(RECIPIENT_HRP, self.public_bytes)

    def __repr__(self) -> str:
        return "X25519Recipient(%s)" % self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other.public_bytes == self.public_bytes

    def __hash__(self) -> int:
        return hash(self.public_bytes)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        secret = ephemeral.exchange(self._key)
        key = hkdf(secret, share + self.public_bytes, _INFO)
        return [Stanza(STANZA_TYPE, [b64encode(share)], wrap_key(key, file_key))]


class X25519Identity:
    """A private key; the only thing that can unwrap stanzas made for its recipient."""

    post_quantum = False

    def __init__(self, secret_bytes: bytes) -> None:
        if len(secret_bytes) != 32:
            raise KeyFormatError("an X25519 secret key is 32 bytes")
        self.secret_bytes = secret_bytes
        self._key = X25519PrivateKey.from_private_bytes(secret_bytes)
        self._public = self._key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(os.urandom(32))

    @classmethod
    def parse(cls, text: str) -> X25519Identity:
        hrp, data = bech32.decode(text)
        if hrp != IDENTITY_HRP:
            raise KeyFormatError("not an age X25519 identity (expected AGE-SECRET-KEY-1…)")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode(IDENTITY_HRP, self.secret_bytes)

    def __repr__(self) -> str:
        return "X25519Identity(recipient=%s)" % self.recipient

    @property
    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self._public)

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise HeaderError("invalid X25519 stanza: expected exactly one argument")
            share = b64decode(stanza.args[0])
            if len(share) != 32:
                raise HeaderError("invalid X25519 stanza: the share must be 32 bytes")
            if len(stanza.body) != FILE_KEY_SIZE + 16:
                raise HeaderError("invalid X25519 stanza: the wrapped file key must be 16 bytes")
            secret = _shared_secret(self._key, share)
            key = hkdf(secret, share + self._public, _INFO)
            file_key = unwrap_key(key, stanza.body)
            if file_key is not None:
                return file_key
        return None
