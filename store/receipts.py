"""Witness receipts: the only way back to a testimony.

A receipt is 20 random decimal digits (66 bits) in five groups of four: easy to write
down and to read aloud in any language. It is never stored. One Argon2id derivation with
the instance salt turns it into a master secret; from that, HKDF derives

* the lookup hash stored in ``witness.receipt_hash``, and
* the witness's reply key (hybrid ML-KEM-768 + X25519 on post-quantum instances,
  else X25519), whose public half is stored so reviewers can seal replies the witness
  alone can open with the code.

A seized database therefore yields neither the codes nor the replies without an
Argon2id guess per candidate code, over 2^66 candidates.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select, text
from sqlalchemy.orm import Session

import crypto

from .models import Recipient, Testimony, Witness
from .roles import BY_RECEIPT
from .settings import Settings

DIGITS = 20
GROUP = 4
_NON_DIGITS = re.compile(r"[\s\-–—.]")


def new_code() -> str:
    number = secrets.randbelow(10**DIGITS)
    digits = str(number).zfill(DIGITS)
    return " ".join(digits[i : i + GROUP] for i in range(0, DIGITS, GROUP))


def normalize(text: str) -> str | None:
    """The code's digits, or None if ``text`` cannot be a receipt. Spaces, dashes and
    dots are ignored; digits from other scripts are not accepted."""
    digits = _NON_DIGITS.sub("", text or "")
    if len(digits) != DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


@dataclass(frozen=True)
class ReceiptKdf:
    """The instance's receipt derivation: its salt and Argon2id cost. Fixed when the
    instance is created (see :func:`store.instance.receipt_kdf`): changing it would make
    every earlier receipt unrecognisable.

    The cost is lower than for reviewer passwords on purpose: a password may be guessed
    from a dictionary, a receipt cannot: it has 66 random bits, so even at the default
    19 MiB and 2 passes (OWASP's minimum for Argon2id) trying them all would take longer
    than the age of the universe on any hardware."""

    salt: bytes
    memory_kib: int
    time_cost: int


class ReceiptKeys:
    """What a receipt code derives: its lookup hash and the witness's reply identity."""

    def __init__(self, settings: Settings, kdf: ReceiptKdf, digits: str) -> None:
        master = hash_secret_raw(
            secret=digits.encode("ascii"),
            salt=kdf.salt,
            time_cost=kdf.time_cost,
            memory_cost=kdf.memory_kib,
            parallelism=1,
            hash_len=32,
            type=Type.ID,
        )
        self.lookup_hash = _hkdf(master, b"testimony receipt lookup").hex()
        self._seed = _hkdf(master, b"testimony reply key")
        self._pq = settings.recipient_keys == "pq"

    @property
    def reply_identity(self) -> crypto.X25519Identity | crypto.HybridIdentity:
        """The identity new replies are sealed to (hybrid on post-quantum instances)."""
        return self._identity("mlkem768x25519" if self._pq else "x25519")

    def identity_for(self, public_key: str) -> crypto.X25519Identity | crypto.HybridIdentity:
        """The identity matching a stored reply key of either type (the same seed)."""
        return self._identity(crypto.key_kind(public_key))

    def _identity(self, kind: str) -> crypto.X25519Identity | crypto.HybridIdentity:
        if kind == "mlkem768x25519":
            return crypto.HybridIdentity(self._seed)
        return crypto.X25519Identity(self._seed)

    @property
    def reply_recipient(self) -> crypto.X25519Recipient | crypto.HybridRecipient:
        return self.reply_identity.recipient


def new_witness(session: Session, lookup_hash: str, reply_key: str, day: dt.date) -> Witness:
    """Add the witness behind a new receipt, with their reply key as a recipient of kind
    ``witness`` (a reader of the replies sealed for them, and of nothing else)."""
    reply = Recipient(
        public_key=reply_key, kind="witness", label="witness", active=False, created_on=day
    )
    session.add(reply)
    session.flush()
    witness = Witness(receipt_hash=lookup_hash, reply_recipient_id=reply.id)
    session.add(witness)
    session.flush()
    return witness


def testimony_by_receipt(session: Session, lookup_hash: str) -> int | None:
    """The id of the testimony whose witness holds this lookup hash, or None.

    The intake's PostgreSQL role cannot read ``witness.receipt_hash`` (store/roles.py): it
    asks the owner's function ``testimony_by_receipt`` instead. Whoever can read the
    column (the owner, SQLite, an intake before ``testimony db roles --apply``) selects
    by it, since the function exists only once the role's SQL has run."""
    if session.get_bind().dialect.name == "postgresql" and not session.scalar(
        text("SELECT has_column_privilege('witness', 'receipt_hash', 'SELECT')")
    ):
        found = session.scalar(
            text("SELECT %s(CAST(:lookup_hash AS text))" % BY_RECEIPT),
            {"lookup_hash": lookup_hash},
        )
    else:
        found = session.scalar(
            select(Testimony.id).join(Witness).where(Witness.receipt_hash == lookup_hash)
        )
    return None if found is None else int(found)
