"""``testimony check``: is everything stored whole, readable by current keys, and on the
record?

Threat: evidence lost without anyone noticing: an item whose chunks went missing (a bad
restore, a disk fault), an item whose header no longer names anyone who can open it (a
half-finished key change), an item that belongs to nothing (a crash mid-way), or an
audit log someone edited.

Guarantee: :func:`check` reports, one line each, every

* sealed item whose chunk rows do not add up to its recorded size and count, whose
  payload does not end on a whole age STREAM chunk, or that is empty;
* sealed item whose age header does not parse, whose stanzas do not match the registered
  recipients it records (type for type, plus a witness's reply key on replies), that does
  not name the active recovery key, or that still names a retired recipient;
* sealed item nothing refers to (an orphan);
* break in the audit chain.

With identities (``--identity``, e.g. the recovery key) it also unseals every item to the
end, which proves each payload's authentication tags, not only its shape.

Misuse to avoid: reading a clean report as proof that backups are good: check the
restored copy, not only the live one (``docs/deploy.md``).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

import crypto

from . import audit
from .blobs import CHUNK_BYTES, open_item
from .models import BlobChunk, BlobRecipient, InstanceValue, Recipient, SealedBlob
from .retention import referring, table_of

STREAM_CHUNK = 64 * 1024 + 16  # a full age STREAM chunk: 64 KiB of plaintext and its tag
NONCE = 16
TAG = 16


@dataclass
class CheckReport:
    items: int = 0
    events: int = 0
    opened: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _whole_stream(payload: int) -> bool:
    """Whether ``payload`` bytes can be a complete age payload: the nonce, then full
    chunks and a last one holding at least its tag."""
    body = payload - NONCE
    if body < TAG:
        return False
    return body % STREAM_CHUNK == 0 or body % STREAM_CHUNK >= TAG


def _check_chunks(session: Session, report: CheckReport) -> None:
    counted = (
        select(
            BlobChunk.blob_id,
            func.count().label("rows"),
            func.coalesce(func.sum(func.length(BlobChunk.data)), 0).label("size"),
            func.min(BlobChunk.seq).label("first"),
            func.max(BlobChunk.seq).label("last"),
            func.sum(case((func.length(BlobChunk.data) != CHUNK_BYTES, 1), else_=0)).label("short"),
        )
        .group_by(BlobChunk.blob_id)
        .subquery()
    )
    rows = session.execute(
        select(
            SealedBlob.id,
            SealedBlob.payload_size,
            SealedBlob.chunk_count,
            counted.c.rows,
            counted.c.size,
            counted.c.first,
            counted.c.last,
            counted.c.short,
        )
        .outerjoin(counted, counted.c.blob_id == SealedBlob.id)
        .order_by(SealedBlob.id)
    )
    for blob_id, payload, count, found, size, first, last, short in rows:
        report.items += 1
        found, size = found or 0, size or 0
        if found != count:
            report.problems.append(
                "sealed item %d: %d of its %d chunks are stored" % (blob_id, found, count)
            )
        elif found and (first != 0 or last != count - 1):
            report.problems.append(
                "sealed item %d: chunk numbers are not 0 to %d" % (blob_id, count - 1)
            )
        if size != payload:
            report.problems.append(
                "sealed item %d: chunks hold %d bytes, %d recorded" % (blob_id, size, payload)
            )
        elif not _whole_stream(payload):
            report.problems.append(
                "sealed item %d: the payload (%d bytes) does not end "
                "on a whole age chunk: it is cut short" % (blob_id, payload)
            )
        if found and short and short > 1:
            report.problems.append(
                "sealed item %d: %d chunks are short; only the last may be" % (blob_id, short)
            )


def _check_headers(session: Session, report: CheckReport) -> None:
    # Per recipient, once: the stanza type its key writes; and which are the active
    # recovery keys and the retired readers (witness reply keys are never active).
    stanza: dict[int, str] = {}
    recovery: set[int] = set()
    retired: dict[int, str] = {}
    rows = session.execute(
        select(
            Recipient.id, Recipient.public_key, Recipient.kind, Recipient.active, Recipient.label
        )
    )
    for recipient_id, public_key, kind, active, label in rows:
        stanza[recipient_id] = crypto.stanza_type(public_key)
        if kind == "recovery" and active:
            recovery.add(recipient_id)
        elif not active and kind != "witness":
            retired[recipient_id] = label
    # Both streams in blob order, walked side by side: memory stays flat however many
    # items there are.
    pairs = iter(
        session.execute(
            select(BlobRecipient.blob_id, BlobRecipient.recipient_id)
            .order_by(BlobRecipient.blob_id, BlobRecipient.recipient_id)
            .execution_options(yield_per=5000)
        )
    )
    pending = next(pairs, None)
    query = (
        select(SealedBlob.id, SealedBlob.header)
        .order_by(SealedBlob.id)
        .execution_options(yield_per=500)
    )
    for blob_id, raw in session.execute(query):
        ids = []
        while pending is not None and pending[0] <= blob_id:
            if pending[0] == blob_id:
                ids.append(pending[1])
            pending = next(pairs, None)
        try:
            header, _source = crypto.read_header(io.BytesIO(raw), armor=False)
        except crypto.AgeError as exc:
            report.problems.append(
                "sealed item %d: the age header does not parse: %s" % (blob_id, exc)
            )
            continue
        expected = Counter(stanza[i] for i in ids)
        found = Counter(s.type for s in header.stanzas)
        if found != expected:
            report.problems.append(
                "sealed item %d: the header's stanzas (%s) do not match "
                "its %d registered recipients"
                % (blob_id, ", ".join(sorted(found.elements())) or "none", len(ids))
            )
        if recovery and not recovery & set(ids):
            report.problems.append(
                "sealed item %d: not sealed to the active recovery key" % blob_id
            )
        for i in ids:
            if i in retired:
                report.problems.append(
                    "sealed item %d: still names the retired recipient %d "
                    "(%s)" % (blob_id, i, retired[i])
                )


def _owned_blobs(session: Session) -> set[int]:
    owned: set[int] = set()
    for _owner, column in referring(table_of(SealedBlob)):
        if column.primary_key:
            continue
        owned.update(v for v in session.scalars(select(column).where(column.is_not(None))))
    for (value,) in session.execute(select(InstanceValue.value)):
        try:  # instance values may name an item (the export key)
            document = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(document, dict) and isinstance(document.get("blob"), int):
            owned.add(document["blob"])
    return owned


def _check_orphans(session: Session, report: CheckReport) -> None:
    owned = _owned_blobs(session)
    for blob_id in session.scalars(select(SealedBlob.id).order_by(SealedBlob.id)):
        if blob_id not in owned:
            report.problems.append("sealed item %d: nothing refers to it (an orphan)" % blob_id)


def _open_everything(
    session: Session, identities: list[crypto.Identity], report: CheckReport
) -> None:
    for blob_id in session.scalars(select(SealedBlob.id).order_by(SealedBlob.id)):
        try:
            with open_item(session, blob_id, identities) as reader:
                while reader.read(CHUNK_BYTES):
                    pass
            report.opened += 1
        except crypto.NoIdentityMatchError:
            report.problems.append(
                "sealed item %d: none of the given identities opens it" % blob_id
            )
        except crypto.AgeError as exc:
            report.problems.append("sealed item %d: does not unseal: %s" % (blob_id, exc))


def check(session: Session, identities: Iterable[crypto.Identity] = ()) -> CheckReport:
    report = CheckReport()
    _check_chunks(session, report)
    _check_headers(session, report)
    _check_orphans(session, report)
    chain = audit.verify(session)
    report.events = chain.events
    report.problems.extend("audit log: %s" % p for p in chain.problems)
    identities = list(identities)
    if identities:
        _open_everything(session, identities, report)
    return report
