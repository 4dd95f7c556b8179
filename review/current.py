"""What a review view needs from the request it serves: the database, the settings, the
signed-in reviewer's audit name, and the check of the plain action form (CSRF)."""

from __future__ import annotations

from flask import abort, g

from store.web import db, settings

from .forms import ActionForm

__all__ = ["actor", "checked", "db", "settings"]


def actor() -> str:
    """The audit log's name for the signed-in reviewer."""
    return "reviewer:%s" % g.reviewer.name


def checked() -> None:
    """A POST with only a CSRF token: refused with 400 unless the token is good."""
    if not ActionForm().validate_on_submit():
        abort(400)
