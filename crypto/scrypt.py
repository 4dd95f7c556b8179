"""Passphrase recipients: the age ``scrypt`` stanza.

A passphrase-sealed file has exactly one stanza, so that nobody can mix a passphrase
with public-key recipients by mistake. Unsealing refuses work factors above a cap
(default 2^20, about a second and 1 GiB of memory) so that a hostile file cannot make
the reader burn minutes of CPU or exhaust memory.
"""

from __future__ import annotations

import os
import re

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import HeaderError
from .format import FILE_KEY_SIZE, Stanza, b64decode, b64encode
from .x25519 import unwrap_key, wrap_key

STANZA_TYPE = "scrypt"
_SALT_LABEL = b"age-encryption.org/v1/scrypt"
_SALT_SIZE = 16
DEFAULT_WORK_FACTOR = 18
MAX_WORK_FACTOR = 20
_DECIMAL = re.compile(r"[1-9][0-9]{0,2}")


def _derive(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=_SALT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase)


def _as_bytes(passphrase: str | bytes) -> bytes:
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase


class ScryptRecipient:
    """Seals to a passphrase. Must be the only recipient of a file."""

    post_quantum = False  # scrypt itself holds, but the passphrase is the weak point

    def __init__(self, passphrase: str | bytes, work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        if not 1 <= work_factor <= 30:
            raise ValueError("scrypt work factor must be between 1 and 30")
        self._passphrase = _as_bytes(passphrase)
        self.work_factor = work_factor

    def __repr__(self) -> str:
        return "ScryptRecipient(work_factor=%d)" % self.work_factor

    def wrap(self, file_key: bytes) -> list[Stanza]:
        salt = os.urandom(_SALT_SIZE)
        key = _derive(self._passphrase, salt, self.work_factor)
        return [
            Stanza(STANZA_TYPE, [b64encode(salt), str(self.work_factor)], wrap_key(key, file_key))
        ]


class ScryptIdentity:
    """Unseals a passphrase-sealed file, refusing work factors above ``max_work_factor``."""

    post_quantum = False

    def __init__(self, passphrase: str | bytes, max_work_factor: int = MAX_WORK_FACTOR) -> None:
        self._passphrase = _as_bytes(passphrase)
        self.max_work_factor = max_work_factor

    @property
    def recipient(self) -> ScryptRecipient:
        """Seals to the same passphrase (at the default work factor)."""
        return ScryptRecipient(self._passphrase)

    def __repr__(self) -> str:
        return "ScryptIdentity(max_work_factor=%d)" % self.max_work_factor

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanzas) != 1:
                raise HeaderError("a scrypt stanza must be the only stanza in the header")
            if len(stanza.args) != 2:
                raise HeaderError("invalid scrypt stanza: expected a salt and a work factor")
            salt = b64decode(stanza.args[0])
            if len(salt) != _SALT_SIZE:
                raise HeaderError("invalid scrypt stanza: the salt must be 16 bytes")
            if not _DECIMAL.fullmatch(stanza.args[1]):
                raise HeaderError("invalid scrypt stanza: malformed work factor")
            work_factor = int(stanza.args[1])
            if work_factor > self.max_work_factor:
                raise HeaderError(
                    "scrypt work factor %d is above the accepted maximum %d"
                    % (work_factor, self.max_work_factor)
                )
            if len(stanza.body) != FILE_KEY_SIZE + 16:
                raise HeaderError("invalid scrypt stanza: the wrapped file key must be 16 bytes")
            key = _derive(self._passphrase, salt, work_factor)
            return unwrap_key(key, stanza.body)
        return None
