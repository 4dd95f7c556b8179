"""Retention: testimony that has stayed in a final status long enough is deleted for good.

Threat: what a service keeps, a seizure takes. Testimony a witness withdrew, or that
reviewers judged not credible, protects nobody by staying; it can still identify.

Guarantee: with ``TESTIMONY_RETENTION_DAYS`` set, ``testimony purge`` deletes every
testimony whose status is one of ``TESTIMONY_RETENTION_STATUSES`` (default: withdrawn,
not_credible) and has been so for that many days: counted from the later of its last
update by the witness and its last status change (both kept to the day). It deletes the
testimony, its witness row and reply key, every row that refers to it (statements, attachments,
replies, notes, incident links, tags, excerpts, and whatever later tables refer to it),
and every sealed item those rows name, header, chunks and recipients, in one
transaction, and records one audit event with the count and ids (never content). On
SQLite every connection sets ``secure_delete`` so deleted pages are overwritten, and the
purge then checkpoints the WAL and runs VACUUM so no old page survives in the file or the
log. On PostgreSQL it runs VACUUM on the tables it touched; ``docs/deploy.md`` says what
else keeps old bytes (VACUUM FULL, WAL, backups).

Misuse to avoid: expecting a purge to reach backups (they keep what they hold until they
expire), or pointing it at a live SQLite file from a copy of the instance.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Column, Table, delete, select, text
from sqlalchemy.orm import Session

from . import audit
from .blobs import discard
from .db import Database
from .models import AuditEvent, Base, Recipient, SealedBlob, Testimony, Witness
from .settings import Settings


def table_of(model: Any) -> Table:
    return cast(Table, model.__table__)


@dataclass
class Purge:
    testimonies: list[int] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    blobs: int = 0


def referring(table: Table) -> list[tuple[Table, Column[Any]]]:
    """Every (table, column) with a foreign key to ``table``'s id."""
    found = []
    for other in Base.metadata.sorted_tables:
        for column in other.columns:
            for key in column.foreign_keys:
                if key.column.table is table and other is not table:
                    found.append((other, column))
    return found


def _blob_columns(table: Table) -> list[Column[Any]]:
    sealed = table_of(SealedBlob)
    return [c for c in table.columns if any(k.column.table is sealed for k in c.foreign_keys)]


def due(session: Session, settings: Settings, today: dt.date) -> list[int]:
    """Ids of testimony the retention policy says to delete today (none when off)."""
    if settings.retention_days <= 0:
        return []
    cutoff = today - dt.timedelta(days=settings.retention_days)
    candidates = list(
        session.scalars(
            select(Testimony.id)
            .where(
                Testimony.status.in_(settings.retention_statuses), Testimony.updated_on <= cutoff
            )
            .order_by(Testimony.id)
        )
    )
    if not candidates:
        return []
    # A status changed after the cutoff restarts the count.
    recent: set[str] = set()
    for batch in _batches(candidates):
        recent.update(
            session.scalars(
                select(AuditEvent.subject).where(
                    AuditEvent.action == "testimony.status",
                    AuditEvent.at >= dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time()),
                    AuditEvent.subject.in_(["testimony:%d" % i for i in batch]),
                )
            )
        )
    return [i for i in candidates if "testimony:%d" % i not in recent]


BATCH = 500  # ids per IN (...) list: SQLite caps the parameters of one statement


def _batches(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]


def delete_testimonies(session: Session, ids: list[int]) -> Purge:
    """Delete ``ids`` and everything that belongs to them, inside the caller's
    transaction."""
    result = Purge(testimonies=sorted(ids))
    if not ids:
        return result
    blobs: set[int] = set()
    testimony = table_of(Testimony)
    rows = session.execute(
        select(testimony.c.witness_id, *_blob_columns(testimony)).where(testimony.c.id.in_(ids))
    ).all()
    witnesses = [row[0] for row in rows]
    blobs.update(v for row in rows for v in row[1:] if v is not None)

    def remove(table: Table, column: Column[Any], keys: list[int]) -> None:
        """Delete rows of ``table`` whose ``column`` is in ``keys``, children first."""
        if not keys:
            return
        key_columns = list(table.primary_key.columns)
        selected = session.execute(
            select(*key_columns, *_blob_columns(table)).where(column.in_(keys))
        ).all()
        if not selected:
            return
        blobs.update(v for row in selected for v in row[len(key_columns) :] if v is not None)
        if len(key_columns) == 1 and "id" in table.c:
            own = [row[0] for row in selected]
            for child, child_column in referring(table):
                remove(child, child_column, own)
        done = session.execute(delete(table).where(column.in_(keys)))
        result.rows[table.name] = result.rows.get(table.name, 0) + _count(done)

    for table, column in referring(testimony):
        remove(table, column, ids)
    done = session.execute(delete(testimony).where(testimony.c.id.in_(ids)))
    result.rows["testimony"] = _count(done)
    replies = list(
        session.scalars(select(Witness.reply_recipient_id).where(Witness.id.in_(witnesses)))
    )
    done = session.execute(delete(table_of(Witness)).where(Witness.id.in_(witnesses)))
    result.rows["witness"] = _count(done)
    result.blobs = _delete_blobs(session, blobs)
    # The witnesses' reply keys, once no reply names them any more.
    done = session.execute(
        delete(table_of(Recipient)).where(Recipient.id.in_(replies), Recipient.kind == "witness")
    )
    result.rows["recipient"] = _count(done)
    return result


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def _delete_blobs(session: Session, blob_ids: set[int]) -> int:
    """Delete sealed items nothing refers to any more, with their chunks and recipients."""
    if not blob_ids:
        return 0
    still: set[int] = set()
    for _owner, column in referring(table_of(SealedBlob)):
        if column.primary_key:
            continue  # chunks and recipient rows belong to the item
        still.update(session.scalars(select(column).where(column.in_(blob_ids))))
    gone = blob_ids - still
    discard(session, gone)
    return len(gone)


def purge(
    db: Database,
    settings: Settings,
    today: dt.date,
    *,
    dry_run: bool = False,
    requested: list[int] | None = None,
    actor: str = "operator",
) -> Purge:
    """Delete what retention says is due (or, with ``requested``, those testimonies),
    audit it, then make the deletion reach the disk (SQLite VACUUM, PostgreSQL VACUUM)."""
    with db.transaction() as session:
        if requested is not None:
            present = set(session.scalars(select(Testimony.id).where(Testimony.id.in_(requested))))
            ids = sorted(present)
        else:
            ids = due(session, settings, today)
        if dry_run or not ids:
            return Purge(testimonies=ids)
        result = Purge(testimonies=ids)
        for batch in _batches(ids):
            done = delete_testimonies(session, batch)
            result.blobs += done.blobs
            for table, count in done.rows.items():
                result.rows[table] = result.rows.get(table, 0) + count
        audit.append(
            session,
            actor,
            "testimony.purge",
            "retention" if requested is None else "request",
            {
                "count": len(ids),
                "testimonies": ids,
                "sealed_items": result.blobs,
                "retention_days": settings.retention_days if requested is None else None,
                "statuses": list(settings.retention_statuses) if requested is None else None,
            },
        )
    reclaim(db)
    return result


def reclaim(db: Database) -> None:
    """Make deleted rows leave the files: SQLite rewrites the file and empties the WAL;
    PostgreSQL marks dead rows' space free (VACUUM FULL is the operator's call)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if db.settings.is_sqlite:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            conn.execute(text("VACUUM"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            conn.execute(
                text(
                    "VACUUM blob_chunk, sealed_blob, blob_recipient, recipient, testimony, "
                    "witness, statement, attachment, message"
                )
            )
