"""WSGI entry points: ``gunicorn wsgi:intake_app`` and ``gunicorn wsgi:review_app``.

Each face is built only when its name is imported, so an intake host never constructs the
review application.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "intake_app":
        from intake import create_app

        app = create_app()
    elif name == "review_app":
        from review import create_app as create_review_app

        app = create_review_app()
    else:
        raise AttributeError(name)
    globals()[name] = app
    return app
