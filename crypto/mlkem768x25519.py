"""Hybrid post-quantum recipients (``age1pq1…``) and identities (``AGE-SECRET-KEY-PQ-1…``).

Threat: a state adversary records sealed testimony today (seized servers, backups, tapped
uplinks) and keeps it until a cryptographically relevant quantum computer can solve the
X25519 discrete logarithm. Everything that was sealed to X25519 alone is then readable,
years after the witness trusted us with it: record now, decrypt later.

Guarantee: a file key wrapped in an ``mlkem768x25519`` stanza stays secret as long as
*either* ML-KEM-768 (FIPS 203, believed secure against quantum computers) *or* X25519
(secure against everything but a quantum computer) holds. The stanza, like an X25519 one,
does not say which recipient it was made for.

The guarantee belongs to the file, not to the stanza: a file is only as strong as its
weakest stanza. If the same file key was ever wrapped to an X25519 (or passphrase)
recipient in a header the adversary saw, breaking that stanza yields the file key and the
payload. Sealing to hybrid and X25519 recipients together, or adding a hybrid recipient to
an already X25519-sealed item (:func:`crypto.add_recipients`, :func:`crypto.set_recipients`
keep the file key), does not protect copies recorded earlier; only sealing afresh, to
hybrid recipients only, does.

Construction (age v1 ``mlkem768x25519``, C2SP age.md): the file key is sealed with HPKE
base mode (RFC 9180) using the KEM MLKEM768-X25519 (X-Wing; KEM id 0x647a), HKDF-SHA256 and
ChaCha20-Poly1305, ``info = "age-encryption.org/mlkem768x25519"`` and empty AAD.

* The identity is a 32-byte seed. SHAKE256(seed) gives 96 bytes: the first 64 are the
  ML-KEM-768 key generation seed (d || z), the last 32 the X25519 private key.
* The recipient is the ML-KEM-768 encapsulation key (1184 bytes) followed by the X25519
  public key (32 bytes): 1216 bytes.
* Encapsulation: ML-KEM gives (ss_PQ, ct_PQ); an ephemeral X25519 key gives ct_T (its
  public key) and ss_T. The KEM shared secret is
  SHA3-256(ss_PQ || ss_T || ct_T || pk_T || "\\.//^\\"), and enc = ct_PQ || ct_T (1120 bytes).
* The stanza is ``-> mlkem768x25519 base64(enc)`` with the 32-byte HPKE ciphertext (the
  16-byte file key and its tag) as body.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from . import bech32
from .errors import HeaderError, KeyFormatError
from .format import FILE_KEY_SIZE, Stanza, b64decode, b64encode
from .keys import KeyType, register

STANZA_TYPE = "mlkem768x25519"
RECIPIENT_HRP = "age1pq"
IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"

SEED_SIZE = 32
MLKEM_PUBLIC_SIZE = 1184
MLKEM_CIPHERTEXT_SIZE = 1088
X25519_SIZE = 32
PUBLIC_SIZE = MLKEM_PUBLIC_SIZE + X25519_SIZE  # 1216
ENC_SIZE = MLKEM_CIPHERTEXT_SIZE + X25519_SIZE  # 1120
BODY_SIZE = FILE_KEY_SIZE + 16

# The X-Wing combiner label, the six ASCII characters \.//^\ .
_KEM_LABEL = b"\x5c\x2e\x2f\x2f\x5e\x5c"
_INFO = b"age-encryption.org/mlkem768x25519"
# HPKE suite: KEM MLKEM768-X25519, KDF HKDF-SHA256, AEAD ChaCha20Poly1305.
_SUITE_ID = b"HPKE" + struct.pack(">HHH", 0x647A, 0x0001, 0x0003)
_MODE_BASE = b"\x00"


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, b"HPKE-v1" + _SUITE_ID + label + ikm, "sha256")


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = struct.pack(">H", length) + b"HPKE-v1" + _SUITE_ID + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


# The key schedule context depends only on the (fixed) info string and the empty PSK ID.
_CONTEXT = (
    _MODE_BASE
    + _labeled_extract(b"", b"psk_id_hash", b"")
    + _labeled_extract(b"", b"info_hash", _INFO)
)


def _aead(shared_secret: bytes) -> tuple[ChaCha20Poly1305, bytes]:
    """HPKE KeySchedule (base mode, no PSK): the AEAD and the nonce of its first message."""
    secret = _labeled_extract(shared_secret, b"secret", b"")
    key = _labeled_expand(secret, b"key", _CONTEXT, 32)
    nonce = _labeled_expand(secret, b"base_nonce", _CONTEXT, 12)
    return ChaCha20Poly1305(key), nonce


def _combine(ss_pq: bytes, ss_t: bytes, ct_t: bytes, pk_t: bytes) -> bytes:
    return hashlib.sha3_256(ss_pq + ss_t + ct_t + pk_t + _KEM_LABEL).digest()


def _expand_seed(seed: bytes) -> tuple[MLKEM768PrivateKey, X25519PrivateKey]:
    expanded = hashlib.shake_256(seed).digest(64 + X25519_SIZE)
    mlkem = MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    return mlkem, X25519PrivateKey.from_private_bytes(expanded[64:])


def _decode(text: str, what: str) -> tuple[str, bytes]:
    try:
        return bech32.decode(text)
    except KeyFormatError as exc:
        # These keys are long (a recipient is 1959 characters): say which key was damaged.
        raise KeyFormatError(
            "invalid age hybrid %s (truncated or mistyped?): %s" % (what, exc)
        ) from None


# Any clamped scalar maps exactly the small-order points to zero, so one exchange with a
# fixed key tells whether a public key could ever give a shared secret.
_PROBE = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


class HybridRecipient:
    """A hybrid ML-KEM-768 + X25519 public key that file keys can be wrapped to."""

    post_quantum = True

    def __init__(self, public_bytes: bytes) -> None:
        if len(public_bytes) != PUBLIC_SIZE:
            raise KeyFormatError("an mlkem768x25519 public key is %d bytes" % PUBLIC_SIZE)
        try:
            self._mlkem = MLKEM768PublicKey.from_public_bytes(public_bytes[:MLKEM_PUBLIC_SIZE])
        except ValueError:
            raise KeyFormatError("invalid mlkem768x25519 public key: bad ML-KEM-768 part") from None
        self._x25519_bytes = public_bytes[MLKEM_PUBLIC_SIZE:]
        self._x25519 = X25519PublicKey.from_public_bytes(self._x25519_bytes)
        try:
            _PROBE.exchange(self._x25519)
        except ValueError:
            raise KeyFormatError(
                "invalid mlkem768x25519 public key: low-order X25519 part"
            ) from None
        self.public_bytes = public_bytes

    @classmethod
    def parse(cls, text: str) -> HybridRecipient:
        return _parse_recipient(text)

    def __str__(self) -> str:
        return bech32.encode(RECIPIENT_HRP, self.public_bytes)

    def __repr__(self) -> str:
        return "HybridRecipient(%s…)" % str(self)[:24]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridRecipient) and other.public_bytes == self.public_bytes

    def __hash__(self) -> int:
        return hash(self.public_bytes)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        ss_pq, ct_pq = self._mlkem.encapsulate()
        ephemeral = X25519PrivateKey.generate()
        ct_t = ephemeral.public_key().public_bytes_raw()
        ss_t = ephemeral.exchange(self._x25519)
        aead, nonce = _aead(_combine(ss_pq, ss_t, ct_t, self._x25519_bytes))
        body = aead.encrypt(nonce, file_key, b"")
        return [Stanza(STANZA_TYPE, [b64encode(ct_pq + ct_t)], body)]


# Decoding 1959 characters of Bech32 takes over a millisecond in Python, and sealing code
# parses the same few reviewer keys for every item it seals. Public keys only; identities
# are never cached.
@functools.lru_cache(maxsize=256)
def _parse_recipient(text: str) -> HybridRecipient:
    hrp, data = _decode(text, "recipient")
    if hrp != RECIPIENT_HRP:
        raise KeyFormatError("not an age hybrid recipient (expected age1pq1…)")
    return HybridRecipient(data)


class HybridIdentity:
    """A 32-byte seed; the only thing that can unwrap stanzas made for its recipient."""

    post_quantum = True

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise KeyFormatError("an mlkem768x25519 secret key is %d bytes" % SEED_SIZE)
        self.seed = seed
        self._mlkem, self._x25519 = _expand_seed(seed)
        self._x25519_public = self._x25519.public_key().public_bytes_raw()
        self._public = self._mlkem.public_key().public_bytes_raw() + self._x25519_public

    @classmethod
    def generate(cls) -> HybridIdentity:
        return cls(os.urandom(SEED_SIZE))

    @classmethod
    def parse(cls, text: str) -> HybridIdentity:
        hrp, data = _decode(text, "identity")
        if hrp != IDENTITY_HRP:
            raise KeyFormatError("not an age hybrid identity (expected AGE-SECRET-KEY-PQ-1…)")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode(IDENTITY_HRP, self.seed)

    def __repr__(self) -> str:
        return "HybridIdentity(recipient=%r)" % self.recipient

    @property
    def recipient(self) -> HybridRecipient:
        return HybridRecipient(self._public)

    def _shared_secret(self, enc: bytes) -> bytes:
        ct_pq, ct_t = enc[:MLKEM_CIPHERTEXT_SIZE], enc[MLKEM_CIPHERTEXT_SIZE:]
        ss_pq = self._mlkem.decapsulate(ct_pq)
        try:
            ss_t = self._x25519.exchange(X25519PublicKey.from_public_bytes(ct_t))
        except ValueError:
            raise HeaderError("invalid mlkem768x25519 stanza: low-order X25519 share") from None
        return _combine(ss_pq, ss_t, ct_t, self._x25519_public)

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise HeaderError("invalid mlkem768x25519 stanza: expected exactly one argument")
            enc = b64decode(stanza.args[0])
            if len(enc) != ENC_SIZE:
                raise HeaderError("invalid mlkem768x25519 stanza: enc must be %d bytes" % ENC_SIZE)
            # Checked before any decryption, against partitioning oracles.
            if len(stanza.body) != BODY_SIZE:
                raise HeaderError(
                    "invalid mlkem768x25519 stanza: the wrapped file key must be 16 bytes"
                )
            aead, nonce = _aead(self._shared_secret(enc))
            try:
                return aead.decrypt(nonce, stanza.body, b"")
            except InvalidTag:
                continue
        return None


register(
    KeyType(
        kind="mlkem768x25519",
        stanza_type=STANZA_TYPE,
        post_quantum=True,
        recipient_class=HybridRecipient,
        identity_class=HybridIdentity,
        recipient_prefix=RECIPIENT_HRP + "1",
        identity_prefix=IDENTITY_HRP + "1",
        parse_recipient=HybridRecipient.parse,
        parse_identity=HybridIdentity.parse,
    )
)
