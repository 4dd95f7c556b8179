"""The append-only, hash-chained audit log.

Each event's hash covers the previous event's hash and the event's own fields, so
removing, reordering or editing any event breaks the chain at that point, which
:func:`verify` reports. Appends are serialised (SQLite: one writer; PostgreSQL: a
transaction-scoped advisory lock) so two processes never fork the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from .models import AuditEvent

GENESIS = "0" * 64
_LOCK_ID = 0x7E57  # advisory lock key for the chain head on PostgreSQL


def _digest(
    prev_hash: str, seq: int, at: dt.datetime, actor: str, action: str, subject: str, details: str
) -> str:
    record = json.dumps([seq, at.isoformat(), actor, action, subject, details], ensure_ascii=False)
    return hashlib.sha256((prev_hash + "\n" + record).encode("utf-8")).hexdigest()


def append(
    session: Session,
    actor: str,
    action: str,
    subject: str = "",
    details: dict[str, object] | None = None,
    *,
    day_only: bool = False,
) -> AuditEvent:
    """Add an event to the chain inside the caller's transaction.

    ``day_only`` coarsens the time to the day, for events caused by witnesses.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    # Only the head's number and hash: the intake's role may read no more of the chain.
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    if day_only:
        now = now.replace(hour=0, minute=0, second=0)
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True)
    event = AuditEvent(
        seq=seq,
        at=now,
        actor=actor,
        action=action,
        subject=subject,
        details=body,
        prev_hash=prev,
        hash=_digest(prev, seq, now, actor, action, subject, body),
    )
    session.add(event)
    session.flush()
    return event


@dataclass
class ChainReport:
    events: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session) -> ChainReport:
    """Walk the chain from the start and list every place where it breaks."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).yield_per(500):
        count += 1
        if event.seq != expected_seq:
            problems.append(
                "event %d: expected sequence number %d (events missing)" % (event.seq, expected_seq)
            )
        if event.prev_hash != prev:
            problems.append("event %d: does not link to the previous event" % event.seq)
        digest = _digest(
            event.prev_hash,
            event.seq,
            event.at,
            event.actor,
            event.action,
            event.subject,
            event.details,
        )
        if digest != event.hash:
            problems.append("event %d: contents were altered (hash mismatch)" % event.seq)
        prev = event.hash
        expected_seq = event.seq + 1
    return ChainReport(events=count, problems=problems)
