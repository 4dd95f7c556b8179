"""Reviewer accounts, login, and split-knowledge sessions.

Threat: a state adversary who seizes the server, or a copy of the database, must not be
able to read testimony; one who steals a browser cookie must not either.

Guarantee:

* A reviewer's age identity is stored only as an age file sealed to their password
  (scrypt). The TOTP secret is stored only sealed to that identity. A database dump holds
  neither in usable form.
* Login needs the name, the password (Argon2id hash check, then the scrypt unwrap) and a
  TOTP code never used before. Failures all look alike; repeated failures lock the account
  for a growing time.
* At login the unwrapped identity is sealed again (ChaCha20-Poly1305) under a fresh
  random session key. The server keeps only that sealed copy, under a hash of the session
  id, with an expiry; the browser alone keeps the session id and key (an HttpOnly,
  SameSite=Strict cookie). The database without the cookie, or the cookie without the
  server's copy, unlocks nothing. Logout, idle timeout, disabling the reviewer and
  changing the password delete the server's copy.
* The server's copies live in the database (table ``review_session``) or, with
  ``TESTIMONY_SESSION_STORAGE_URI=redis://…``, in Redis: one key per session named by the
  hash of its id (never the id), whose TTL is the idle timeout, refreshed on use and never
  beyond the absolute session lifetime, plus one set per reviewer listing their session
  hashes so that disabling them or changing their password finds every copy. A Redis dump
  without the cookies holds only sealed identities nobody can open.

Misuse to avoid: logging the cookie, keeping identities in module state, or passing an
identity to the intake side.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

import pyotp
import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.models import Recipient, Reviewer, ReviewSession
from store.settings import Settings

PASSWORD_MIN_LENGTH = 12
TOTP_ISSUER = "Testimony"
LOCK_AFTER = 5
LOCK_MAX = dt.timedelta(hours=24)

# The most common passwords and patterns; anything here, or built only from it, is refused.
COMMON_PASSWORDS = frozenset(
    """
123456 123456789 12345678 password qwerty 111111 12345 1234567 123123 1234567890 000000
abc123 password1 iloveyou qwerty123 1q2w3e4r 1q2w3e4r5t qwertyuiop 123321 654321 666666
superman 121212 dragon monkey letmein football baseball welcome sunshine princess admin
passw0rd trustno1 michael shadow master jennifer 987654321 qazwsx qazwsxedc zaq12wsx
parol parol123 qwerty12345 password123 password1234 welcome123 admin123 administrator
changeme testtest testimony 1qaz2wsx asdfghjkl zxcvbnm 11111111 00000000 88888888
""".split()
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def password_problem(name: str, password: str) -> str | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return "the password must be at least %d characters long" % PASSWORD_MIN_LENGTH
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or lowered.rstrip("0123456789!.") in COMMON_PASSWORDS:
        return "the password is too common"
    if len(set(password)) < 5:
        return "the password repeats too few different characters"
    if name and name.lower() in lowered:
        return "the password must not contain the reviewer's name"
    return None


def hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib, parallelism=1
    )


def new_identity(settings: Settings) -> crypto.Identity:
    from store.instance import new_identity as make

    return make(settings)


def seal_identity(settings: Settings, identity: object, password: str) -> bytes:
    recipient = crypto.ScryptRecipient(password, work_factor=settings.scrypt_work_factor)
    return crypto.seal_bytes(str(identity).encode(), [recipient])


def unseal_identity(sealed: bytes, password: str) -> crypto.Identity | None:
    try:
        text = crypto.unseal_bytes(sealed, [crypto.ScryptIdentity(password)])
    except crypto.AgeError:
        return None
    return crypto.parse_identity(text.decode())


@dataclass
class NewReviewer:
    reviewer: Reviewer
    identity: crypto.Identity
    totp_secret: str

    @property
    def provisioning_uri(self) -> str:
        return pyotp.TOTP(self.totp_secret).provisioning_uri(
            name=self.reviewer.name, issuer_name=TOTP_ISSUER
        )


def create_reviewer(
    session: Session,
    settings: Settings,
    name: str,
    password: str,
    is_admin: bool = False,
    actor: str = "operator",
) -> NewReviewer:
    problem = password_problem(name, password)
    if problem:
        raise ValueError(problem)
    if session.scalar(select(Reviewer).where(Reviewer.name == name)):
        raise ValueError("a reviewer named %r already exists" % name)
    identity = new_identity(settings)
    recipient = Recipient(
        public_key=str(identity.recipient),
        kind="reviewer",  # type: ignore[attr-defined]
        label="reviewer %s" % name,
        active=True,
        created_on=now().date(),
    )
    session.add(recipient)
    session.flush()
    secret = pyotp.random_base32()
    reviewer = Reviewer(
        name=name,
        is_admin=is_admin,
        active=True,
        password_hash=hasher(settings).hash(password),
        identity_sealed=seal_identity(settings, identity, password),
        totp_sealed=crypto.seal_bytes(secret.encode(), [identity.recipient]),  # type: ignore[attr-defined]
        last_totp_step=0,
        failed_logins=0,
        recipient_id=recipient.id,
        created_on=now().date(),
    )
    session.add(reviewer)
    session.flush()
    audit.append(
        session,
        actor,
        "reviewer.add",
        "reviewer:%s" % name,
        {"admin": is_admin, "public_key": recipient.public_key},
    )
    return NewReviewer(reviewer, identity, secret)


def change_password(
    session: Session, settings: Settings, reviewer: Reviewer, current: str, new: str, actor: str
) -> None:
    """Re-seal the identity to a new password; every session of the reviewer ends."""
    identity = unseal_identity(reviewer.identity_sealed, current)
    if identity is None:
        raise ValueError("the current password is wrong")
    problem = password_problem(reviewer.name, new)
    if problem:
        raise ValueError(problem)
    reviewer.password_hash = hasher(settings).hash(new)
    reviewer.identity_sealed = seal_identity(settings, identity, new)
    end_all_sessions(session, reviewer.id)
    audit.append(session, actor, "reviewer.password", "reviewer:%s" % reviewer.name)


class LoginFailed(Exception):
    """One generic failure: the message never says which factor was wrong."""


def _totp_step(secret: str, code: str, last_step: int, at: dt.datetime) -> int | None:
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int(at.replace(tzinfo=dt.UTC).timestamp()) // totp.interval
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


_DUMMY_HASH: dict[tuple[int, int], str] = {}
_DUMMY_SEALED: dict[int, bytes] = {}


def _dummy_verify(settings: Settings, password: str) -> None:
    """Spend the same time on an unknown name as on a known one: a password hash check
    and an unwrap of a key sealed to a password."""
    key = (settings.argon2_time_cost, settings.argon2_memory_kib)
    if key not in _DUMMY_HASH:
        _DUMMY_HASH[key] = hasher(settings).hash(secrets.token_hex(16))
    try:
        hasher(settings).verify(_DUMMY_HASH[key], password)
    except VerificationError:
        pass
    factor = settings.scrypt_work_factor
    if factor not in _DUMMY_SEALED:
        _DUMMY_SEALED[factor] = seal_identity(
            settings, crypto.X25519Identity.generate(), secrets.token_hex(16)
        )
    unseal_identity(_DUMMY_SEALED[factor], password)


def authenticate(
    session: Session, settings: Settings, name: str, password: str, code: str
) -> tuple[Reviewer, crypto.Identity]:
    reviewer = session.scalar(select(Reviewer).where(Reviewer.name == name))
    at = now()
    if reviewer is None or not reviewer.active:
        _dummy_verify(settings, password)
        raise LoginFailed()
    if reviewer.locked_until and reviewer.locked_until > at:
        _dummy_verify(settings, password)
        raise LoginFailed()
    try:
        try:
            hasher(settings).verify(reviewer.password_hash, password)
        except (VerificationError, InvalidHashError):
            # As long as a right password with a wrong code: the time must not tell.
            unseal_identity(reviewer.identity_sealed, password)
            raise
        identity = unseal_identity(reviewer.identity_sealed, password)
        if identity is None:
            raise VerificationError("identity did not unseal")
        secret = crypto.unseal_bytes(reviewer.totp_sealed, [identity]).decode()
        step = _totp_step(secret, code, reviewer.last_totp_step, at)
        if step is None:
            raise VerificationError("bad or reused TOTP code")
    except (VerificationError, InvalidHashError, crypto.AgeError):
        reviewer.failed_logins += 1
        if reviewer.failed_logins >= LOCK_AFTER:
            minutes = 2 ** min(reviewer.failed_logins - LOCK_AFTER, 11)
            reviewer.locked_until = at + min(dt.timedelta(minutes=minutes), LOCK_MAX)
        audit.append(
            session,
            "reviewer:%s" % reviewer.name,
            "login.failed",
            "reviewer:%s" % reviewer.name,
            {"failures": reviewer.failed_logins},
        )
        raise LoginFailed() from None
    reviewer.last_totp_step = step
    reviewer.failed_logins = 0
    reviewer.locked_until = None
    return reviewer, identity


def key_upgrade_due(settings: Settings, identity: crypto.Identity) -> bool:
    """The key policy at login: whether the reviewer who just unlocked ``identity`` gets
    a new key now. With post-quantum keys configured (``TESTIMONY_RECIPIENT_KEYS=pq``) an
    X25519 key is replaced by a hybrid one, and login is the one moment the password that
    seals it is at hand; :func:`review.sharing.upgrade_reviewer_key` makes the change."""
    return settings.recipient_keys == "pq" and isinstance(identity, crypto.X25519Identity)


def _hash_id(session_id: bytes) -> str:
    return hashlib.sha256(session_id).hexdigest()


# --- where the server's copies live --------------------------------------------------------

TOUCH_AFTER = dt.timedelta(seconds=30)  # last use is recorded at most this often


@dataclass
class SessionCopy:
    """The server's half of one session."""

    reviewer_id: int
    sealed: bytes
    expires_at: dt.datetime
    last_seen: dt.datetime


class DatabaseCopies:
    """Session copies in the ``review_session`` table (the default)."""

    def __init__(self, session: Session, settings: Settings | None) -> None:
        self.session = session
        self.settings = settings

    def put(self, id_hash: str, copy: SessionCopy) -> None:
        self.session.add(
            ReviewSession(
                id_hash=id_hash,
                reviewer_id=copy.reviewer_id,
                sealed_identity=copy.sealed,
                expires_at=copy.expires_at,
                last_seen=copy.last_seen,
            )
        )
        self.session.flush()

    def get(self, id_hash: str) -> SessionCopy | None:
        row = self.session.get(ReviewSession, id_hash)
        if row is None:
            return None
        return SessionCopy(row.reviewer_id, row.sealed_identity, row.expires_at, row.last_seen)

    def touch(self, id_hash: str, copy: SessionCopy, at: dt.datetime) -> None:
        self.session.execute(
            update(ReviewSession).where(ReviewSession.id_hash == id_hash).values(last_seen=at)
        )

    def delete(self, id_hash: str) -> None:
        self.session.execute(delete(ReviewSession).where(ReviewSession.id_hash == id_hash))

    def delete_reviewer(self, reviewer_id: int) -> None:
        self.session.execute(delete(ReviewSession).where(ReviewSession.reviewer_id == reviewer_id))

    def purge(self, at: dt.datetime) -> int:
        assert self.settings is not None
        idle_cut = at - dt.timedelta(minutes=self.settings.review_idle_minutes)
        result = self.session.execute(
            delete(ReviewSession).where(
                (ReviewSession.expires_at <= at) | (ReviewSession.last_seen <= idle_cut)
            )
        )
        return result.rowcount or 0  # type: ignore[attr-defined]


_REDIS_CLIENTS: dict[str, redis.Redis] = {}


def _redis(uri: str) -> redis.Redis:
    """One connection pool per address and process (redis-py reconnects after a fork and
    after the server restarts). Short timeouts: an unreachable Redis must become a "try
    again" page quickly, not a hung worker."""
    client = _REDIS_CLIENTS.get(uri)
    if client is None:
        client = _REDIS_CLIENTS[uri] = redis.Redis.from_url(
            uri, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return client


class RedisCopies:
    """Session copies in Redis: a hash per session, ``PREFIX-review-session:HASH``, with
    its TTL, and a set per reviewer, ``PREFIX-review-sessions-of:ID``, of their hashes."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.prefix = settings.limiter_prefix + "-review-session:"
        self.index = settings.limiter_prefix + "-review-sessions-of:"

    def key(self, id_hash: str) -> str:
        return self.prefix + id_hash

    def _ttl_ms(self, copy: SessionCopy, at: dt.datetime) -> int:
        idle = dt.timedelta(minutes=self.settings.review_idle_minutes)
        left = min(idle, copy.expires_at - at)
        return max(int(left.total_seconds() * 1000), 1)

    def put(self, id_hash: str, copy: SessionCopy) -> None:
        index = self.index + str(copy.reviewer_id)
        lifetime = int(dt.timedelta(hours=self.settings.review_session_hours).total_seconds())
        stale = [
            h
            for h in self.client.smembers(index)
            if not self.client.exists(self.prefix + h.decode())
        ]
        pipe = self.client.pipeline()
        pipe.hset(
            self.key(id_hash),
            mapping={
                "reviewer": copy.reviewer_id,
                "sealed": copy.sealed,
                "expires": copy.expires_at.isoformat(),
                "seen": copy.last_seen.isoformat(),
            },
        )
        pipe.pexpire(self.key(id_hash), self._ttl_ms(copy, copy.last_seen))
        if stale:
            pipe.srem(index, *stale)
        pipe.sadd(index, id_hash)
        pipe.expire(index, lifetime)  # the newest session outlives the others
        pipe.execute()

    def get(self, id_hash: str) -> SessionCopy | None:
        found = self.client.hgetall(self.key(id_hash))
        if not found:
            return None
        return SessionCopy(
            int(found[b"reviewer"]),
            found[b"sealed"],
            dt.datetime.fromisoformat(found[b"expires"].decode()),
            dt.datetime.fromisoformat(found[b"seen"].decode()),
        )

    def touch(self, id_hash: str, copy: SessionCopy, at: dt.datetime) -> None:
        copy.last_seen = at
        pipe = self.client.pipeline()
        pipe.hset(self.key(id_hash), "seen", at.isoformat())
        pipe.pexpire(self.key(id_hash), self._ttl_ms(copy, at))
        pipe.execute()

    def delete(self, id_hash: str) -> None:
        reviewer = self.client.hget(self.key(id_hash), "reviewer")
        pipe = self.client.pipeline()
        pipe.delete(self.key(id_hash))
        if reviewer is not None:
            pipe.srem(self.index + reviewer.decode(), id_hash)
        pipe.execute()

    def delete_reviewer(self, reviewer_id: int) -> None:
        index = self.index + str(reviewer_id)
        hashes = [h.decode() for h in self.client.smembers(index)]
        pipe = self.client.pipeline()
        for id_hash in hashes:
            pipe.delete(self.key(id_hash))
        pipe.delete(index)
        pipe.execute()

    def purge(self, at: dt.datetime) -> int:
        return 0  # Redis expires idle copies itself


def session_copies(
    session: Session, settings: Settings | None = None
) -> DatabaseCopies | RedisCopies:
    """Where this instance keeps the server's session copies."""
    settings = settings or session.info.get("settings")
    if settings is not None and settings.session_storage_uri:
        return RedisCopies(_redis(settings.session_storage_uri), settings)
    return DatabaseCopies(session, settings)


def open_session(
    session: Session, settings: Settings, reviewer: Reviewer, identity: crypto.Identity
) -> str:
    """Seal the identity under a new session key; return the cookie value."""
    purge_expired_sessions(session, settings)  # sessions whose browsers never came back
    session_id, key = os.urandom(32), os.urandom(32)
    id_hash = _hash_id(session_id)
    nonce = os.urandom(12)
    sealed = nonce + ChaCha20Poly1305(key).encrypt(nonce, str(identity).encode(), id_hash.encode())
    at = now()
    expires = at + dt.timedelta(hours=settings.review_session_hours)
    session_copies(session, settings).put(id_hash, SessionCopy(reviewer.id, sealed, expires, at))
    encode = base64.urlsafe_b64encode
    return (encode(session_id) + b"." + encode(key)).decode().replace("=", "")


def _parse_cookie(value: str) -> tuple[bytes, bytes] | None:
    try:
        sid, key = value.split(".")
        session_id = base64.urlsafe_b64decode(sid + "=" * (-len(sid) % 4))
        session_key = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    except (ValueError, TypeError):
        return None
    if len(session_id) != 32 or len(session_key) != 32:
        return None
    return session_id, session_key


def load_session(
    session: Session, settings: Settings, cookie: str | None
) -> tuple[Reviewer, crypto.Identity] | None:
    """The reviewer and unlocked identity of a live session, or None (and the server's
    copy of an expired session is deleted)."""
    parsed = _parse_cookie(cookie or "")
    if parsed is None:
        return None
    session_id, key = parsed
    id_hash = _hash_id(session_id)
    copies = session_copies(session, settings)
    copy = copies.get(id_hash)
    if copy is None:
        return None
    at = now()
    idle = dt.timedelta(minutes=settings.review_idle_minutes)
    if copy.expires_at <= at or copy.last_seen + idle <= at:
        copies.delete(id_hash)
        return None
    try:
        nonce, body = copy.sealed[:12], copy.sealed[12:]
        text = ChaCha20Poly1305(key).decrypt(nonce, body, id_hash.encode())
    except InvalidTag:
        return None
    reviewer = session.get(Reviewer, copy.reviewer_id)
    if reviewer is None or not reviewer.active:
        copies.delete(id_hash)
        return None
    if at - copy.last_seen > TOUCH_AFTER:
        copies.touch(id_hash, copy, at)
        purge_expired_sessions(session, settings)
    return reviewer, crypto.parse_identity(text.decode())


def end_session(session: Session, cookie: str | None) -> None:
    parsed = _parse_cookie(cookie or "")
    if parsed:
        session_copies(session).delete(_hash_id(parsed[0]))


def end_all_sessions(session: Session, reviewer_id: int) -> None:
    """Delete every server copy of the reviewer's sessions, wherever they are kept (and
    any left in the database from before a move to Redis)."""
    copies = session_copies(session)
    copies.delete_reviewer(reviewer_id)
    if not isinstance(copies, DatabaseCopies):
        DatabaseCopies(session, None).delete_reviewer(reviewer_id)


def purge_expired_sessions(session: Session, settings: Settings) -> int:
    """Delete copies past their idle or absolute limit (Redis does it by itself); copies
    left in the database from before a move to Redis go too."""
    at = now()
    removed = DatabaseCopies(session, settings).purge(at)
    copies = session_copies(session, settings)
    if not isinstance(copies, DatabaseCopies):
        removed += copies.purge(at)
    return removed
