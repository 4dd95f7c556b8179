"""Reviewer accounts and login; the sessions a login opens are :mod:`review.sessions`.

Threat: a state adversary who seizes the server, or a copy of the database, must not be
able to read testimony; one who steals a browser cookie must not either.

Guarantee:

* A reviewer's age identity is stored only as an age file sealed to their password
  (scrypt). The TOTP secret is stored only sealed to that identity. A database dump holds
  neither in usable form.
* Login needs the name, the password (Argon2id hash check, then the scrypt unwrap) and a
  TOTP code never used before. Failures all look alike; repeated failures lock the account
  for a growing time.
* Changing the password ends every session of the reviewer.

Misuse to avoid: logging a password or a TOTP code, keeping identities in module state,
or passing an identity to the intake side.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, cast

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, CursorResult, or_, select, update
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.models import Recipient, Reviewer
from store.settings import Settings

from . import sessions, sharing
from .sessions import end_all_sessions

__all__ = ["end_all_sessions"]  # for review.sharing, which ends sessions when it disables

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
    """The review face's clock (:func:`review.sessions.now`, which tests replace)."""
    return sessions.now()


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
        kind="reviewer",
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
        totp_sealed=crypto.seal_bytes(secret.encode(), [identity.recipient]),
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


def _unlocked(at: dt.datetime) -> ColumnElement[bool]:
    return or_(Reviewer.locked_until.is_(None), Reviewer.locked_until <= at)


def _count_failure(session: Session, reviewer: Reviewer, at: dt.datetime) -> None:
    """Count a failed login in one statement on the row as it is now, not as it was read:
    concurrent failures each count, on top of each other. An account locked meanwhile
    refuses the attempt as a locked account does, without counting it."""
    failures = session.scalar(
        update(Reviewer)
        .where(Reviewer.id == reviewer.id, _unlocked(at))
        .values(failed_logins=Reviewer.failed_logins + 1)
        .returning(Reviewer.failed_logins)
        .execution_options(synchronize_session=False)
    )
    if failures is not None and failures >= LOCK_AFTER:
        # The UPDATE above holds the row (PostgreSQL) or the database (SQLite) until the
        # transaction ends: nothing changes the count between it and this lock.
        minutes = 2 ** min(failures - LOCK_AFTER, 11)
        session.execute(
            update(Reviewer)
            .where(Reviewer.id == reviewer.id)
            .values(locked_until=at + min(dt.timedelta(minutes=minutes), LOCK_MAX))
            .execution_options(synchronize_session=False)
        )
    session.refresh(reviewer)
    if failures is not None:
        audit.append(
            session,
            "reviewer:%s" % reviewer.name,
            "login.failed",
            "reviewer:%s" % reviewer.name,
            {"failures": failures},
        )


def _claim(session: Session, reviewer: Reviewer, step: int, at: dt.datetime) -> bool:
    """Record a successful login if the row is still the one the checks read: still
    active, not locked meanwhile, the same password and key, and ``step`` still newer
    than the last used. One conditional UPDATE, so of two logins with the same code only
    one can claim its step, and a success never resets a count it has not seen."""
    claimed = cast(
        "CursorResult[Any]",
        session.execute(
            update(Reviewer)
            .where(
                Reviewer.id == reviewer.id,
                Reviewer.active.is_(True),
                Reviewer.password_hash == reviewer.password_hash,
                Reviewer.recipient_id == reviewer.recipient_id,
                Reviewer.last_totp_step < step,
                _unlocked(at),
            )
            .values(last_totp_step=step, failed_logins=0, locked_until=None)
            .execution_options(synchronize_session=False)
        ),
    )
    return bool(claimed.rowcount)


def authenticate(
    session: Session, settings: Settings, name: str, password: str, code: str
) -> tuple[Reviewer, crypto.Identity]:
    """Check the three factors, then record the outcome atomically.

    The checks (Argon2, scrypt: slow on purpose) run on the row as read, without a lock;
    what they conclude is written only by conditional UPDATEs that the database applies
    to the row as it is then (:func:`_claim`, :func:`_count_failure`), so concurrent logins
    leave the counter, the lock and the last used step as some serial order of the same
    logins would: one code lets in one login, every failure counts, and no success undoes
    a failure it raced."""
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
        _count_failure(session, reviewer, at)
        raise LoginFailed() from None
    if not _claim(session, reviewer, step, at):
        # Another login used the step first (a replay: it counts as a wrong code), or the
        # account changed or was locked meanwhile.
        _count_failure(session, reviewer, at)
        raise LoginFailed()
    session.refresh(reviewer)
    return reviewer, identity


def login(
    session: Session, settings: Settings, name: str, password: str, code: str
) -> tuple[Reviewer, crypto.Identity]:
    """:func:`authenticate`, then the key policy at login: with post-quantum keys
    configured (``TESTIMONY_RECIPIENT_KEYS=pq``) an X25519 key is replaced by a hybrid one
    (:func:`upgrade_key`), login being the one moment the password that seals it is at
    hand. Returns the reviewer and the identity their session holds."""
    reviewer, identity = authenticate(session, settings, name, password, code)
    if settings.recipient_keys == "pq" and not identity.post_quantum:
        identity = upgrade_key(session, settings, reviewer, identity, password)
    return reviewer, identity


def upgrade_key(
    session: Session,
    settings: Settings,
    reviewer: Reviewer,
    old: crypto.Identity,
    password: str,
) -> crypto.HybridIdentity:
    """Replace a reviewer's X25519 key with a hybrid one: add the new key to every item
    the old one opens, then drop the old key's stanzas."""
    new = crypto.HybridIdentity.generate()
    recipient = Recipient(
        public_key=str(new.recipient),
        kind="reviewer",
        label="reviewer %s" % reviewer.name,
        active=True,
        created_on=now().date(),
    )
    session.add(recipient)
    session.flush()
    secret = crypto.unseal_bytes(reviewer.totp_sealed, [old])
    old_recipient = reviewer.recipient
    # A key upgrade: the items are classic until the old key's stanzas are dropped.
    added = sharing.add_recipient(session, [old], recipient, allow_mixed=True)
    old_recipient.active = False
    reviewer.recipient_id = recipient.id
    reviewer.recipient = recipient
    reviewer.identity_sealed = seal_identity(settings, new, password)
    reviewer.totp_sealed = crypto.seal_bytes(secret, [new.recipient])
    dropped = sharing.drop_recipient(session, [new], old_recipient)
    audit.append(
        session,
        "reviewer:%s" % reviewer.name,
        "reviewer.key_upgrade",
        "reviewer:%s" % reviewer.name,
        {
            "public_key": recipient.public_key,
            "added": added.changed,
            "dropped": dropped.changed,
            "skipped": dropped.skipped,
        },
    )
    return new
