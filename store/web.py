"""What both faces share about HTTP, in one place: the strict response headers, the
keyed hash that stands in for a client address in rate limits, the Flask settings that
keep cookies, CSRF tokens and access logs safe, the error handlers, the text-only form
base, and :func:`init_app`, which sets all of it up on a face's app.

Guarantee: no page loads anything from elsewhere, is cached, sends a referrer, or can be
framed; no client address is ever kept, not even as a rate-limit key (only an HMAC of it
under the instance secret and the current day, so yesterday's keys cannot be matched to
today's, and a seized limiter store reveals no address). When the database or Redis
cannot be reached, both faces answer 503 with a "try again" page, never a 500 (see
:func:`unavailable`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import pkgutil
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from limits.errors import StorageError
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc
from werkzeug.exceptions import HTTPException

from .db import Database
from .settings import Settings

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": (
        "camera=(), microphone=(), geolocation=(), interest-cohort=(), payment=(), usb=()"
    ),
}


def add_security_headers(response: Any) -> Any:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers.pop("Server", None)
    return response


# The failures that mean a backend (the database or Redis) is briefly out of reach: down,
# restarting, refusing connections, or too busy.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    exc.OperationalError,
    exc.TimeoutError,
    StorageError,
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
)


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means a backend is briefly out of reach (one of
    :data:`UNAVAILABLE_ERRORS`, or a database error that invalidated its connection).
    Nothing was committed then, so the honest answer is 503 and "try again", not a
    crash."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, UNAVAILABLE_ERRORS)


def client_key(secret: bytes, face: str, address: str | None) -> str:
    """A keyed, daily-rotating hash of a client address for one face."""
    day = dt.datetime.now(dt.UTC).date().isoformat().encode()
    key = secret + b"|" + face.encode() + b"|" + day
    return hmac.new(key, (address or "").encode(), hashlib.sha256).hexdigest()[:32]


def behind_proxies(app: Any, settings: Settings) -> None:
    """Trust the X-Forwarded-For set by ``settings.trusted_proxies`` proxies in front, for
    rate-limit keys only (it is hashed like any address, and never kept). Behind Tor every
    client is 127.0.0.1; the nginx of docs/deploy passes Tor's circuit id instead, so the
    per-client budgets count circuits, not the whole service as one client."""
    if settings.trusted_proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0, x_port=0, x_prefix=0
        )


class _Below(logging.Filter):
    """Drops the records of one logger below ``level``, whatever level an operator's
    logging configuration gives that logger or its handlers."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def _pillow_loggers() -> list[str]:
    """Pillow's loggers: one per module, named after it (listed without importing them)."""
    try:
        import PIL
    except ImportError:
        return []
    return ["PIL"] + ["PIL." + module.name for module in pkgutil.iter_modules(PIL.__path__)]


QUIETED = {
    # Access lines hold the client's address, User-Agent and the exact time: the
    # development server's, and gunicorn's, which any --log-config file turns on.
    "werkzeug": logging.ERROR,
    "gunicorn.access": logging.CRITICAL + 1,
}


def quiet_logs() -> None:
    """Keep request metadata and EXIF out of the logs even at DEBUG.

    Threat: an operator chasing a problem sets every logger to DEBUG (or passes gunicorn
    a logging configuration file); Pillow then quotes EXIF tags (a camera's name, a GPS
    position) and access lines record addresses and User-Agents. Guarantee: a filter on
    each of those loggers drops the records, whatever level the configuration sets; the
    loggers' levels are lowered too, so no message is even formatted. Misuse: a record
    logged under another name is not covered; code here logs no request data at all.
    """
    quieted = dict.fromkeys(_pillow_loggers(), logging.INFO)
    quieted.update(QUIETED)
    for name, level in quieted.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), level))
        if not any(isinstance(f, _Below) for f in logger.filters):
            logger.addFilter(_Below(level))


def face_config(settings: Settings, face: str) -> dict[str, Any]:
    """Flask configuration common to both faces; each face adds its own."""
    quiet_logs()
    return {
        "TESTIMONY_SETTINGS": settings,
        "SECRET_KEY": hashlib.sha256(face.encode() + b"|" + settings.secret_key).hexdigest(),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "SESSION_COOKIE_SECURE": settings.cookie_secure,
        # A slow upload over Tor can take an hour or more: tokens last the browser session.
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": False,
        "WTF_I18N_ENABLED": True,
        "BABEL_TRANSLATION_DIRECTORIES": "translations",
        "RATELIMIT_STORAGE_URI": settings.limiter_storage_uri,
        "RATELIMIT_KEY_PREFIX": settings.limiter_prefix + "-" + face,
    }


# --- what a view reaches through the app -------------------------------------------------


def db() -> Database:
    """The database of the app serving this request."""
    database: Database = current_app.extensions["testimony_db"]
    return database


def settings() -> Settings:
    """The settings of the app serving this request."""
    chosen: Settings = current_app.config["TESTIMONY_SETTINGS"]
    return chosen


# --- forms -------------------------------------------------------------------------------

_FROM_REQUEST = object()


class PlainForm(FlaskForm):  # type: ignore[misc]  # Flask-WTF has no type hints
    """The base of every form of both faces: filled from the request's text fields only
    when submitted (or from ``formdata`` when given, ``None`` for an empty form).

    Flask-WTF would otherwise also fill text fields from file parts and from a JSON body,
    handing validators objects that are not text (a file, a number, a list), and a
    crafted request crashed the page instead of being answered with a message."""

    def __init__(self, formdata: Any = _FROM_REQUEST, **kwargs: Any) -> None:
        if formdata is _FROM_REQUEST:
            formdata = (
                request.form if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
            )
        super().__init__(formdata=formdata, **kwargs)


# --- rate limits ------------------------------------------------------------------------


def limited(limit: Any, *, key_func: Any = None, scope: str) -> Any:
    """Mark a view with a rate limit on its POSTs (``limit`` a Flask-Limiter limit or a
    callable giving one, ``key_func`` the key, by default the hashed client address);
    :func:`apply_limits` applies the marks with each app's own limiter, so two apps (or
    tests) never share counters."""

    def mark(view: Any) -> Any:
        view.testimony_limits = [*getattr(view, "testimony_limits", []), (limit, key_func, scope)]
        return view

    return mark


def apply_limits(app: Flask, limiter: Limiter) -> None:
    """Apply the :func:`limited` marks of ``app``'s views (after its blueprints are
    registered)."""
    for endpoint, view in list(app.view_functions.items()):
        wrapped: Any = view  # Flask-Limiter's decorator is typed for async views as well
        for limit, key_func, scope in getattr(view, "testimony_limits", []):
            wrapped = limiter.limit(limit, key_func=key_func, methods=["POST"], scope=scope)(
                wrapped
            )
        app.view_functions[endpoint] = wrapped


# --- one setup for both faces --------------------------------------------------------------

ErrorPage = Callable[[int, "str | None"], Any]
"""A face's error page: ``error_page(status, kind)``, where ``kind`` names a reason
finer than the status (``"unavailable"`` for a backend out of reach) or is ``None``."""


def refuse_nul() -> None:
    """No page or search matches a NUL character, and PostgreSQL text cannot hold one:
    a path with one is not found (404), a query with one is bad (400), before any view
    passes it to the database."""
    if "\x00" in request.path:
        abort(404)
    if any("\x00" in key + value for key, value in request.args.items(multi=True)):
        abort(400)


def init_app(
    app: Flask,
    settings: Settings,
    *,
    face: str,
    error_page: ErrorPage,
    limiter_strategy: str,
    db: Database | None = None,
) -> Limiter:
    """Set up what both faces share on ``app``, the face named ``face`` (``"intake"`` or
    ``"review"``); call it after the face's own configuration.

    It installs the common configuration (:func:`face_config`), the database (``db``, or
    one opened from ``settings``) and the settings for :func:`db` and :func:`settings`,
    the proxy rule (:func:`behind_proxies`), CSRF protection (``CSRFProtect``: every POST
    is checked before any view runs, unless the face turns ``WTF_CSRF_CHECK_DEFAULT``
    off, as the intake does so that its forms check the token and give back what was
    typed), the strict headers on every answer, and the error handlers: ``error_page``
    for HTTP errors and rate limits, a 503 for a backend out of reach, and a crash
    handler that logs only the kind of failure (never request data, which may be
    testimony). Returns the face's rate limiter, keyed on :func:`client_key` of the
    client address for this face.
    """
    app.config.update(face_config(settings, face))
    app.extensions["testimony_db"] = db or Database(settings)
    behind_proxies(app, settings)
    CSRFProtect(app)
    app.before_request(refuse_nul)
    app.after_request(add_security_headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        return error_page(error.code or 500, None)

    @app.errorhandler(RateLimitExceeded)
    def too_many(error: RateLimitExceeded) -> Any:
        return error_page(429, None)

    def backend_unavailable(error: Exception) -> Any:
        app.logger.error("backend unavailable: %s", type(error).__name__)
        return error_page(503, "unavailable")

    for kind in UNAVAILABLE_ERRORS:
        app.register_error_handler(kind, backend_unavailable)

    @app.errorhandler(Exception)
    def crash(error: Exception) -> Any:
        if unavailable(error):
            return backend_unavailable(error)
        if app.testing:
            raise error
        app.logger.error("internal error: %s", type(error).__name__)
        return error_page(500, None)

    def client() -> str:
        return client_key(settings.secret_key, face, request.remote_addr)

    return Limiter(client, app=app, strategy=limiter_strategy, headers_enabled=False)
