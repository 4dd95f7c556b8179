"""Who may open which testimony: one rule, for reading and for every change.

Threat: a reviewer who was never given a testimony (one who joined after it arrived and
has not been shared it yet, or whose stanzas were dropped) acting on it all the same:
setting its status (a withdrawn testimony can be purged), answering its witness,
tagging, linking or assigning it, making or deleting its excerpts, or asking for its
contact and files, which they cannot unseal.

Guarantee: :func:`may_open` is the one place that decides. A reviewer may open a
testimony when the header of its details item (the sealed item every testimony has,
written with it) names the reviewer's current recipient, as recorded in
``blob_recipient``: exactly the stanza the reviewer's unlocked identity unseals, which
sharing (:func:`review.sharing.grant`) adds and disabling drops. Administrators get no
exception: an administrator whose key the testimony is not sealed to can neither read
nor change it (administrator actions that concern no one testimony are unchanged).
Every view that names a testimony, a file, an excerpt, a link or a note of one loads it
through :func:`testimony_or_403` (or :func:`attachment_or_403`,
:func:`excerpt_or_403`) before it reads the form or changes anything: 404 when there is
no such row, 403 (the review face's error page) when the signed-in reviewer may not
open it. Lists that show no plaintext (the inbox) may still list such a testimony.

Misuse to avoid: deciding from the reviewer's role or from ``assigned_to``; letting a
failed unsealing decide instead of this rule (a view may still answer 403 when one item
of a testimony it may open is not sealed to the reviewer yet, rather than fail); and
loading a testimony's rows by id in a view without one of these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn, TypeVar

from flask import abort, g, make_response, render_template
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from store.models import Attachment, BlobRecipient, Excerpt, Reviewer, Testimony

NOT_SHARED = _l(
    "This testimony is not shared with you yet: ask a reviewer who can read it to share "
    "it with you."
)


def _openable(reviewer: Reviewer) -> Select[int]:
    """The ids of the testimonies ``reviewer`` may open (a query, to narrow further)."""
    return (
        select(Testimony.id)
        .join(BlobRecipient, BlobRecipient.blob_id == Testimony.details_blob_id)
        .where(BlobRecipient.recipient_id == reviewer.recipient_id)
    )


def may_open(session: Session, reviewer: Reviewer, testimony_id: int) -> bool:
    """Whether ``reviewer`` may read, and so act on, the testimony ``testimony_id``."""
    query = _openable(reviewer).where(Testimony.id == testimony_id)
    return session.scalar(query) is not None


def openable(session: Session, reviewer: Reviewer, testimony_ids: Iterable[int]) -> set[int]:
    """Those of ``testimony_ids`` that ``reviewer`` may open (the rule of
    :func:`may_open`, for a list in one query)."""
    wanted = sorted(set(testimony_ids))
    if not wanted:
        return set()
    return set(session.scalars(_openable(reviewer).where(Testimony.id.in_(wanted))))


def refuse() -> NoReturn:
    """Answer 403 with the review face's error page, saying why."""
    page = render_template("error.html", code=403, message=NOT_SHARED)
    abort(make_response(page, 403))


def testimony_or_403(session: Session, testimony_id: int) -> Testimony:
    """The testimony, for the signed-in reviewer: 404 if there is none, 403 if they may
    not open it."""
    found = session.get(Testimony, testimony_id)
    if found is None:
        abort(404)
    if not may_open(session, g.reviewer, found.id):
        refuse()
    return found


Part = TypeVar("Part", Attachment, Excerpt)


def _part_or_403(session: Session, model: type[Part], row_id: int) -> Part:
    """A row that belongs to one testimony, for the signed-in reviewer (404, 403 as
    :func:`testimony_or_403`)."""
    found = session.get(model, row_id)
    if found is None:
        abort(404)
    testimony_or_403(session, found.testimony_id)
    return found


def attachment_or_403(session: Session, attachment_id: int) -> Attachment:
    """A file of a testimony the signed-in reviewer may open (404, 403 as above)."""
    return _part_or_403(session, Attachment, attachment_id)


def excerpt_or_403(session: Session, excerpt_id: int) -> Excerpt:
    """An excerpt of a testimony the signed-in reviewer may open (404, 403 as above)."""
    return _part_or_403(session, Excerpt, excerpt_id)
