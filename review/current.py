"""What a review view needs from the request it serves: the database, the settings, the
signed-in reviewer's audit name, and the check of the plain action form (CSRF)."""

from __future__ import annotations

from flask import abort, current_app, g

from store.db import Database
from store.settings import Settings

from .forms import ActionForm


def db() -> Database:
    return current_app.extensions["testimony_db"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return current_app.config["TESTIMONY_SETTINGS"]  # type: ignore[no-any-return]


def actor() -> str:
    """The audit log's name for the signed-in reviewer."""
    return "reviewer:%s" % g.reviewer.name


def checked() -> None:
    """A POST with only a CSRF token: refused with 400 unless the token is good."""
    if not ActionForm().validate_on_submit():
        abort(400)
