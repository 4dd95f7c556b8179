"""Sharing sealed testimony with a new reviewer, and cutting a disabled one off.

Both rewrite only age headers (see docs/format.md): the payload chunks are untouched.
Granting needs an identity that can open the items (an unlocked reviewer's, or the
recovery key). Removing writes fresh stanzas for everyone who remains, so the removed
reviewer's stanza is gone; replies keep the witness's reply key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.blobs import blob_header, replace_header
from store.models import BlobRecipient, Message, Recipient, Reviewer, SealedBlob, Testimony, Witness

from .accounts import end_all_sessions


@dataclass
class Rewritten:
    changed: int = 0
    skipped: int = 0  # items the given identity could not open


def _recipients_of(session: Session, blob_id: int) -> list[Recipient]:
    return list(session.scalars(
        select(Recipient).join(BlobRecipient, BlobRecipient.recipient_id == Recipient.id)
        .where(BlobRecipient.blob_id == blob_id).order_by(Recipient.id)))


def _witness_keys(session: Session, blob_id: int) -> list[crypto.Recipient]:
    key = session.scalar(
        select(Witness.reply_public_key).join(Testimony, Testimony.witness_id == Witness.id)
        .join(Message, Message.testimony_id == Testimony.id).where(Message.blob_id == blob_id))
    return [crypto.parse_recipient(key)] if key else []


def grant(session: Session, identities: list[crypto.Identity], reviewer: Reviewer,
          actor: str) -> Rewritten:
    """Add ``reviewer``'s key to every item that does not name it yet."""
    result = Rewritten()
    new_key = crypto.parse_recipient(reviewer.recipient.public_key)
    named = select(BlobRecipient.blob_id).where(
        BlobRecipient.recipient_id == reviewer.recipient_id)
    for blob in session.scalars(select(SealedBlob).where(SealedBlob.id.not_in(named))):
        try:
            header = crypto.add_recipients(blob_header(blob), identities, [new_key])
        except crypto.NoIdentityMatchError:
            result.skipped += 1
            continue
        replace_header(session, blob, header,
                       [*_recipients_of(session, blob.id), reviewer.recipient])
        result.changed += 1
    audit.append(session, actor, "reviewer.grant", "reviewer:%s" % reviewer.name,
                 {"items": result.changed, "skipped": result.skipped})
    return result


def disable(session: Session, identities: list[crypto.Identity], reviewer: Reviewer,
            actor: str) -> Rewritten:
    """Stop sealing to ``reviewer``, end their sessions, and drop their stanzas."""
    reviewer.active = False
    reviewer.recipient.active = False
    end_all_sessions(session, reviewer.id)
    result = Rewritten()
    holding = select(BlobRecipient.blob_id).where(
        BlobRecipient.recipient_id == reviewer.recipient_id)
    for blob in session.scalars(select(SealedBlob).where(SealedBlob.id.in_(holding))):
        remaining = [r for r in _recipients_of(session, blob.id) if r.id != reviewer.recipient_id]
        keys = [crypto.parse_recipient(r.public_key) for r in remaining]
        keys += _witness_keys(session, blob.id)
        if not keys:
            result.skipped += 1
            continue
        try:
            header = crypto.set_recipients(blob_header(blob), identities, keys)
        except crypto.NoIdentityMatchError:
            result.skipped += 1
            continue
        replace_header(session, blob, header, remaining)
        result.changed += 1
    audit.append(session, actor, "reviewer.disable", "reviewer:%s" % reviewer.name,
                 {"items": result.changed, "skipped": result.skipped})
    return result
