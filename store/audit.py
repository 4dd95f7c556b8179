"""The append-only, hash-chained audit log.

Each event's hash covers the previous event's hash and the event's own fields, so
removing, reordering or editing any event breaks the chain at that point, which
:func:`verify` reports. Whoever can write the database can also recompute every hash after
an edit; signed anchors kept off the server (:mod:`store.anchors`) catch that: the event
an anchor names must still have the anchor's hash. Appends are serialised (SQLite: one
writer; PostgreSQL: a transaction-scoped advisory lock) so two processes never fork the
chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from .anchors import Anchor
from .models import AuditEvent

GENESIS = "0" * 64
_LOCK_ID = 0x7E57  # advisory lock key for the chain head on PostgreSQL
ANCHOR_ACTION = "audit.anchor"


def _digest(
    prev_hash: str, seq: int, at: dt.datetime, actor: str, action: str, subject: str, details: str
) -> str:
    record = json.dumps([seq, at.isoformat(), actor, action, subject, details], ensure_ascii=False)
    return hashlib.sha256((prev_hash + "\n" + record).encode("utf-8")).hexdigest()


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})


def head(session: Session) -> tuple[int, str] | None:
    """The number and hash of the chain's newest event (None when empty), locked for the
    rest of the caller's transaction so that nothing is appended in between."""
    _lock(session)
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (last.seq, last.hash) if last else None


def last_anchor_day(session: Session) -> dt.date | None:
    """The day of the newest ``audit.anchor`` event, or None when none was ever taken."""
    at = session.scalar(select(func.max(AuditEvent.at)).where(AuditEvent.action == ANCHOR_ACTION))
    return at.date() if at else None


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
    _lock(session)
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
    anchors: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, anchors: Sequence[Anchor] = ()) -> ChainReport:
    """Walk the chain from the start and list every place where it breaks, then check
    that the event each (already signature-checked) anchor names still has its hash.

    A chain recomputed after an edit links up again, so only anchors see it; the first
    bad event then lies after the newest anchor that still matches and at or before the
    first that does not (exact when anchors were taken one event apart)."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    last_seq = 0
    wanted = {anchor.seq for anchor in anchors}
    seen: dict[int, str] = {}
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
        if event.seq in wanted:
            seen[event.seq] = event.hash
        prev = event.hash
        expected_seq = event.seq + 1
        last_seq = event.seq
    good = 0  # the newest anchored event that still matches, among those before
    for anchor in sorted(anchors, key=lambda a: a.seq):
        found = seen.get(anchor.seq)
        if found == anchor.hash:
            good = max(good, anchor.seq)
            continue
        low = good + 1
        if found is None:
            high = min(anchor.seq, last_seq + 1)
            what = "event %d is missing (the log ends at event %d)" % (anchor.seq, last_seq)
        else:
            high = anchor.seq
            what = "event %d does not have the anchored hash" % anchor.seq
        where = "event %d" % low if low >= high else "events %d-%d" % (low, high)
        problems.append(
            "%s: first bad event%s: anchor %s: %s; removed, reordered, edited or recomputed"
            % (where, "" if low >= high else " among them", anchor.label, what)
        )
    return ChainReport(events=count, problems=problems, anchors=len(anchors))
