"""The reviewer face: log in and unlock a key, read, answer, share.

``create_app()`` builds it from :mod:`store.settings`. This is the only process where
private keys are unwrapped, and only for the duration of a request (see
:mod:`review.sessions` for the split-knowledge sessions). Every route requires a complete
login (password, TOTP, unlocked key) except the login page itself: the check is made for
every request, so a route added later cannot forget it.

CSRF: every POST (and PUT, PATCH, DELETE) to this face needs the form's CSRF token.
Flask-WTF's ``CSRFProtect`` (installed by :func:`store.web.init_app`) checks it before any
view runs and answers 400 without one; views do not check it again, and no route is
exempt. Administrator routes are marked with :func:`review.roles.admin_only`, the one
place that check is made.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Flask, Request, abort, g, redirect, render_template, request, url_for
from flask_babel import Babel
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.routing import IntegerConverter

from store import settings as settings_module
from store import web
from store.db import Database
from store.settings import Settings
from store.vocabulary import REVIEW_DEFAULT_LANGUAGE, REVIEW_LANGUAGES

from . import sessions
from .sessions import SESSION_COOKIE

PUBLIC_ENDPOINTS = {"auth.login", "static"}


def choose_language() -> str:
    chosen = request.args.get("lang") or request.cookies.get("review_lang")
    if chosen in REVIEW_LANGUAGES:
        return chosen
    return request.accept_languages.best_match(REVIEW_LANGUAGES) or REVIEW_DEFAULT_LANGUAGE


ERROR_MESSAGES: dict[object, Any] = {
    "csrf": _l("The form expired. Go back, reload the page and try again."),
    400: _l("The request could not be understood."),
    401: _l("Please log in."),
    403: _l("You are not allowed to do this."),
    404: _l("There is nothing here."),
    405: _l("There is nothing here."),
    413: _l("This is too large."),
    429: _l("Too many attempts. Wait a while and try again."),
    500: _l("Something went wrong. Nothing was changed."),
    503: _l(
        "The database or session store cannot be reached just now. Nothing was "
        "changed. Try again in a few minutes."
    ),
}


def _error_page(code: int, kind: str | None = None) -> Any:
    message = ERROR_MESSAGES.get(kind) or ERROR_MESSAGES.get(code, ERROR_MESSAGES[400])
    return render_template("error.html", code=code, message=message), code


class _Discard(io.RawIOBase):
    """Where file parts go: no reviewer form uploads anything, so nothing is kept."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0


class RowId(IntegerConverter):
    """An id in a URL: a number a database row id can be (a 32-bit integer). A larger
    one is not found, rather than overflowing the database driver."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **{"max": 2**31 - 1, **kwargs})


class ReviewRequest(Request):
    """A request that never spools a file part to disk (Werkzeug would, in plaintext,
    for parts over 500 KiB, even before the login check runs)."""

    def _get_file_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Discard()


def create_app(settings: Settings | None = None, db: Database | None = None) -> Flask:
    settings = settings or settings_module.load()
    app = Flask(__name__)
    app.request_class = ReviewRequest
    app.url_map.converters["int"] = RowId
    app.config.update(MAX_CONTENT_LENGTH=2 * 1024 * 1024, SESSION_COOKIE_NAME="review_csrf")
    limiter = web.init_app(
        app,
        settings,
        face="review",
        error_page=_error_page,
        limiter_strategy="moving-window",
        db=db,
    )
    Babel(app, locale_selector=choose_language)

    from . import catalogue, views
    from .export import views as export_views

    for blueprint in views.BLUEPRINTS + catalogue.BLUEPRINTS + export_views.BLUEPRINTS:
        app.register_blueprint(blueprint)
    login_limit = "%d/minute;%d/hour" % (
        settings.logins_per_client_minute,
        settings.logins_per_client_hour,
    )
    login: Any = limiter.limit(login_limit, methods=["POST"], scope="login-client")
    app.view_functions["auth.login"] = login(app.view_functions["auth.login"])

    @app.before_request
    def require_login() -> Any:
        g.reviewer = g.identity = None
        with web.db().transaction() as session:
            found = sessions.load_session(session, settings, request.cookies.get(SESSION_COOKIE))
            if found:
                reviewer, identity = found
                session.expunge(reviewer)
                g.reviewer, g.identity = reviewer, identity
        if g.reviewer is None and request.endpoint not in PUBLIC_ENDPOINTS:
            if request.method == "GET" and request.endpoint is not None:
                return redirect(url_for("auth.login", next=request.full_path))
            abort(401 if request.endpoint is not None else 404)
        return None

    @app.context_processor
    def context() -> dict[str, Any]:
        return {"reviewer": g.get("reviewer"), "lang": choose_language()}

    @app.after_request
    def remember_language(response: Any) -> Any:
        if request.args.get("lang") in REVIEW_LANGUAGES:
            response.set_cookie(
                "review_lang",
                request.args["lang"],
                httponly=True,
                samesite="Strict",
                secure=settings.cookie_secure,
            )
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        return _error_page(400, "csrf")

    return app
