"""What both faces share about HTTP, in one place: the strict response headers, the
keyed hash that stands in for a client address in rate limits, and the Flask settings
that keep cookies, CSRF tokens and access logs safe.

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
from typing import Any

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


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means a backend (the database or Redis) is briefly out of reach:
    down, restarting, refusing connections, or too busy. Nothing was committed then, so
    the honest answer is 503 and "try again", not a crash."""
    from limits.errors import StorageError
    from redis.exceptions import BusyLoadingError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy import exc

    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(
        error,
        (
            exc.OperationalError,
            exc.TimeoutError,
            StorageError,
            RedisConnectionError,
            RedisTimeoutError,
            BusyLoadingError,
        ),
    )


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
