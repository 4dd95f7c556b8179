"""The split-knowledge sessions a reviewer's login opens, and where the server keeps its
half of them.

Threat: a state adversary who seizes the server, or a copy of the database, must not be
able to read testimony; one who steals a browser cookie must not either.

Guarantee:

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
import os
from dataclasses import dataclass
from typing import Any, cast

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from sqlalchemy import CursorResult, delete, update
from sqlalchemy.orm import Session

import crypto
from store.models import Reviewer, ReviewSession
from store.settings import Settings

SESSION_COOKIE = "review_session"  # the browser's half: the session id and key


def now() -> dt.datetime:
    """The review face's clock: UTC, without a time zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


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
        # A DELETE's result is a CursorResult (Session.execute is typed to return a Result).
        result = cast(
            "CursorResult[Any]",
            self.session.execute(
                delete(ReviewSession).where(
                    (ReviewSession.expires_at <= at) | (ReviewSession.last_seen <= idle_cut)
                )
            ),
        )
        return result.rowcount or 0


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


def _text(value: bytes | str) -> str:
    """A Redis reply as text (the client returns bytes unless told to decode)."""
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    """A Redis reply as bytes (what it is unless the client was told to decode)."""
    return value if isinstance(value, bytes) else value.encode()


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
            h for h in self.client.smembers(index) if not self.client.exists(self.prefix + _text(h))
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
            _raw(found[b"sealed"]),
            dt.datetime.fromisoformat(_text(found[b"expires"])),
            dt.datetime.fromisoformat(_text(found[b"seen"])),
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
            pipe.srem(self.index + _text(reviewer), id_hash)
        pipe.execute()

    def delete_reviewer(self, reviewer_id: int) -> None:
        index = self.index + str(reviewer_id)
        hashes = [_text(h) for h in self.client.smembers(index)]
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
