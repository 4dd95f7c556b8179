"""What a review view needs from the request it serves: the database, the settings and
the signed-in reviewer's audit name. (CSRF needs nothing here: CSRFProtect checks every
POST before a view runs; see :mod:`review`.)"""

from __future__ import annotations

from flask import g

from store.web import db, settings

__all__ = ["actor", "db", "settings"]


def actor() -> str:
    """The audit log's name for the signed-in reviewer."""
    return "reviewer:%s" % g.reviewer.name
