"""The witness face: a small server-rendered site that works with JavaScript off.

``create_app()`` builds it from :mod:`store.settings`. The intake holds only public keys:
it seals what witnesses send and cannot read any of it back, except replies sealed to a
witness's own receipt key, and only while that witness is on the page.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, g, redirect, render_template, request, url_for
from flask_babel import Babel
from flask_babel import gettext as _

from store import settings as settings_module
from store import web
from store.db import Database
from store.settings import Settings
from store.vocabulary import DEFAULT_LANGUAGE, LANGUAGE_LABELS, LANGUAGES

from .spool import SealedSpool, UploadBudget

FORM_FIELDS_BYTES = 2 * 1024 * 1024  # all text fields together, Cyrillic included


class IntakeRequest(Request):
    """A request whose uploads are spooled encrypted (see :mod:`intake.spool`)."""

    max_form_memory_size = FORM_FIELDS_BYTES
    max_form_parts = 1000

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> Any:
        budget = getattr(self, "_upload_budget", None)
        if budget is None:
            settings: Settings = self.app_settings
            budget = UploadBudget(
                per_file=settings.max_file_size, remaining=settings.max_submission_size
            )
            self._upload_budget = budget
        return SealedSpool(budget)

    @property
    def app_settings(self) -> Settings:
        return web.settings()

    @property
    def upload_budget(self) -> UploadBudget | None:
        return getattr(self, "_upload_budget", None)


def choose_language() -> str:
    lang = getattr(g, "lang", None)
    if isinstance(lang, str) and lang in LANGUAGES:
        return lang
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def create_app(settings: Settings | None = None, db: Database | None = None) -> Flask:
    settings = settings or settings_module.load()
    app = Flask(__name__)
    app.request_class = IntakeRequest
    app.config.update(
        # The hard ceiling: the submission cap plus room for the text fields. Below it,
        # caps are enforced while receiving so the form comes back with what was typed.
        MAX_CONTENT_LENGTH=settings.max_submission_size + 64 * 1024 * 1024,
        SESSION_COOKIE_NAME="s",
        WTF_CSRF_CHECK_DEFAULT=False,
        BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE,
        RATELIMIT_SWALLOW_ERRORS=False,
    )
    limiter = web.init_app(
        app, settings, face="intake", error_page=_error_page, limiter_strategy="fixed-window", db=db
    )
    Babel(app, locale_selector=choose_language)

    from . import views

    app.register_blueprint(views.welcome)
    app.register_blueprint(views.submit)
    app.register_blueprint(views.follow_up)
    web.apply_limits(app, limiter)
    app.extensions["testimony_limiter"] = limiter

    @app.context_processor
    def page_context() -> dict[str, Any]:
        return {
            "page_title": settings.page_title,
            "languages": LANGUAGE_LABELS,
            "switch_url": _switch_url,
        }

    @app.route("/")
    def root() -> Any:
        return redirect(url_for("welcome.index", lang=choose_language()))

    @app.teardown_request
    def close_spools(_exc: BaseException | None) -> None:
        budget = getattr(request, "upload_budget", None) if request else None
        if budget:
            for spool in budget.spools:
                spool.close()

    return app


def _switch_url(lang: str) -> str:
    """The current page in another language (a form page comes back empty)."""
    if request.endpoint and request.url_rule and "lang" in request.url_rule.arguments:
        return url_for(request.endpoint, **{**(request.view_args or {}), "lang": lang})
    return url_for("welcome.index", lang=lang)


ERROR_TEXT = {
    400: "bad_request",
    404: "not_found",
    405: "not_found",
    413: "too_large",
    429: "too_many",
    500: "server_error",
    503: "not_ready",
}


def _error_page(code: int, kind: str | None = None) -> Any:
    kind = kind or ERROR_TEXT.get(code, "server_error" if code >= 500 else "bad_request")
    return render_template("error.html", kind=kind), code


__all__ = ["create_app", "_"]
