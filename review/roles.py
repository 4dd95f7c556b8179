"""What only administrators may do on the review face.

Threat: an ordinary reviewer's account, or a stolen session of one, editing the incident
catalogue or disabling colleagues.

Guarantee: a view marked :func:`admin_only` answers 403 to any reviewer who is not an
administrator, for every method the route accepts, before the view runs. The mark is
kept on the view (``view.admin_only``), so the set of administrator routes can be read
from the app's URL map and each one tested.

Misuse to avoid: checking ``is_admin`` inside a view instead; nothing outside the view
could tell that route apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort, g


def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        reviewer = g.get("reviewer")
        if reviewer is None or not reviewer.is_admin:
            abort(403)
        return view(*args, **kwargs)

    checked.admin_only = True  # type: ignore[attr-defined]  # mypy has no way to declare a function's attributes
    return checked


def is_admin_only(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, "admin_only", False))
