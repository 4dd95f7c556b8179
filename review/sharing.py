"""Sharing sealed testimony with a new key, and cutting an old one off.

Everything here rewrites only age headers (see docs/format.md): payload chunks are never
touched. Adding needs an identity that can open the items (an unlocked reviewer's, or the
recovery key). Dropping writes fresh stanzas for everyone who remains, so the dropped
key's stanza is gone; a reply's witness key is one of its recipients and stays. Changes
of key type (to post-quantum hybrid keys) always add the new key everywhere before
dropping the old one, so no item is unreadable at any step.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.blobs import NoReaderLeftError, reseal
from store.models import BlobRecipient, Recipient, Reviewer, SealedBlob

from .sessions import end_all_sessions, now


@dataclass
class Rewritten:
    changed: int = 0
    skipped: int = 0  # items the given identity could not open


def add_recipient(
    session: Session,
    identities: list[crypto.Identity],
    recipient: Recipient,
    *,
    allow_mixed: bool = False,
) -> Rewritten:
    """Add ``recipient`` to every item that does not name it yet and that
    ``identities`` can open."""
    result = Rewritten()
    named = select(BlobRecipient.blob_id).where(BlobRecipient.recipient_id == recipient.id)
    for blob_id in session.scalars(select(SealedBlob.id).where(SealedBlob.id.not_in(named))):
        try:
            reseal(session, blob_id, identities, add=[recipient], allow_mixed=allow_mixed)
        except crypto.NoIdentityMatchError:
            result.skipped += 1
            continue
        result.changed += 1
    return result


def drop_recipient(
    session: Session, identities: list[crypto.Identity], recipient: Recipient
) -> Rewritten:
    """Rewrite every item naming ``recipient`` for its other recipients only (a reply
    keeps its witness's reply key, a recipient like the others)."""
    result = Rewritten()
    holding = select(BlobRecipient.blob_id).where(BlobRecipient.recipient_id == recipient.id)
    for blob_id in session.scalars(select(SealedBlob.id).where(SealedBlob.id.in_(holding))):
        try:
            reseal(session, blob_id, identities, drop=[recipient])
        except (crypto.NoIdentityMatchError, NoReaderLeftError):
            result.skipped += 1  # never leave an item that no reviewer can open
            continue
        result.changed += 1
    return result


def grant(
    session: Session, identities: list[crypto.Identity], reviewer: Reviewer, actor: str
) -> Rewritten:
    """Share every item ``identities`` can open with ``reviewer``."""
    result = add_recipient(session, identities, reviewer.recipient)
    return _audited(session, actor, "reviewer.grant", reviewer, result)


def disable(
    session: Session, identities: list[crypto.Identity], reviewer: Reviewer, actor: str
) -> Rewritten:
    """Stop sealing to ``reviewer``, end their sessions, and drop their stanzas."""
    reviewer.active = False
    reviewer.recipient.active = False
    end_all_sessions(session, reviewer.id)
    result = drop_recipient(session, identities, reviewer.recipient)
    return _audited(session, actor, "reviewer.disable", reviewer, result)


def _audited(
    session: Session, actor: str, action: str, reviewer: Reviewer, result: Rewritten
) -> Rewritten:
    target = "reviewer:%s" % reviewer.name
    details: dict[str, object] = {"items": result.changed, "skipped": result.skipped}
    audit.append(session, actor, action, target, details)
    return result


def upgrade_recovery_key(
    session: Session, old: list[crypto.Identity], new: crypto.HybridIdentity, actor: str
) -> tuple[Rewritten, Rewritten]:
    """Register ``new`` as the recovery key, add it to every item the ``old`` identities
    open, then drop the old recovery key's stanzas."""
    old_recipients = list(
        session.scalars(
            select(Recipient).where(Recipient.kind == "recovery", Recipient.active.is_(True))
        )
    )
    recipient = Recipient(
        public_key=str(new.recipient),
        kind="recovery",
        label="organisation recovery key (post-quantum)",
        active=True,
        created_on=now().date(),
    )
    session.add(recipient)
    session.flush()
    added = add_recipient(session, old, recipient, allow_mixed=True)
    audit.append(
        session,
        actor,
        "recovery.key_add",
        "recipient:%d" % recipient.id,
        {"public_key": recipient.public_key, "items": added.changed, "skipped": added.skipped},
    )
    dropped = Rewritten()
    for previous in old_recipients:
        previous.active = False
        result = drop_recipient(session, [new], previous)
        dropped.changed += result.changed
        dropped.skipped += result.skipped
    audit.append(
        session,
        actor,
        "recovery.key_drop",
        "recovery",
        {"items": dropped.changed, "skipped": dropped.skipped},
    )
    return added, dropped
