"""The witness's pages, as three blueprints named for what a witness does:
``welcome`` (read how it works), ``submit`` (give testimony), ``follow_up`` (come back
with the receipt to read questions and add more). Every URL starts with the language."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, g, make_response, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from werkzeug.datastructures import FileStorage

from store import receipts
from store.settings import MIB, Settings
from store.vocabulary import DEFAULT_LANGUAGE, LANGUAGES
from store.web import UNAVAILABLE_ERRORS, limited
from store.web import db as _db
from store.web import settings as _settings

from . import submission
from .forms import AddForm, ReceiptForm, TestimonyForm, place_choices
from .spool import SealedSpool


def N_(message: str) -> str:
    """Mark a message for the catalogue; it is translated where it is shown."""
    return message


UPLOAD_MESSAGES = {
    "file_too_large": N_("“%(name)s” is too large. Each file can be up to %(mib)s MB."),
    "file_empty": N_("“%(name)s” is empty."),
    "file_type": N_("“%(name)s” is not a photo, audio, video or PDF file we can accept."),
    "image_corrupt": N_("“%(name)s” looks like a photo but cannot be opened. It may be damaged."),
    "image_too_many_pixels": N_(
        "“%(name)s” is a picture that is too big to open. Please send a smaller copy."
    ),
}


# First strong isolate ... pop directional isolate; the name's own isolate marks are
# dropped, so a stray U+2069 in it cannot close the isolate early.
_ISOLATE = "\u2068%s\u2069"
_ISOLATE_MARKS = dict.fromkeys(map(ord, "\u2066\u2067\u2068\u2069"))


def isolated(name: str) -> str:
    """A file name to put in a sentence: its direction controls (a U+202E that would
    turn ".exe" around and reverse the rest of the sentence) end where the name does."""
    return _ISOLATE % name.translate(_ISOLATE_MARKS)


def _upload_message(reason: str, name: str, settings: Settings) -> str:
    # The literal strings are listed for the catalogue; gettext translates at request time.
    return _(UPLOAD_MESSAGES[reason], name=isolated(name or "?"), mib=settings.max_file_size // MIB)


def _language_blueprint(name: str, prefix: str) -> Blueprint:
    bp = Blueprint(name, __name__, url_prefix="/<lang>" + prefix)

    @bp.url_value_preprocessor
    def pull_lang(endpoint: str | None, values: dict[str, Any] | None) -> None:
        lang = (values or {}).pop("lang", None)
        if lang not in LANGUAGES:
            abort(404)
        g.lang = lang

    @bp.url_defaults
    def add_lang(endpoint: str, values: dict[str, Any]) -> None:
        values.setdefault("lang", g.get("lang"))

    return bp


welcome = _language_blueprint("welcome", "")
submit = _language_blueprint("submit", "/testimony")
follow_up = _language_blueprint("follow_up", "/receipt")


def _not_ready() -> Any:
    return render_template("error.html", kind="not_ready"), 503


@welcome.before_app_request
def language_from_path() -> None:
    """A URL that matches no page (a 404 under /kk/) still answers in its language."""
    first = request.path.lstrip("/").split("/", 1)[0]
    if first in LANGUAGES and "lang" not in g:
        g.lang = first


@welcome.app_context_processor
def page_language() -> dict[str, str]:
    """The language the page is written in (for ``<html lang>`` and links), also on
    pages outside the language prefixes, such as a 404 chosen by Accept-Language."""
    lang = str(get_locale() or DEFAULT_LANGUAGE)
    return {"page_lang": lang if lang in LANGUAGES else DEFAULT_LANGUAGE}


@welcome.route("/")
def index() -> Any:
    return render_template("welcome.html")


@welcome.route("/notes")
def leave() -> Any:
    """Where "Leave quickly" goes: a page that says nothing about this service, under the
    same neutral title, with no link back. It also drops the session cookie (it holds
    only a CSRF token), so nothing on the device ties the browser to the form."""
    response = make_response(render_template("leave.html"))
    response.headers["Clear-Site-Data"] = '"cookies", "storage"'
    return response


def _files(field_files: list[Any], errors: list[str]) -> list[submission.ReceivedFile]:
    received: list[submission.ReceivedFile] = []
    for storage in field_files:
        if not isinstance(storage, FileStorage) or not storage.filename and not storage.stream:
            continue
        spool = storage.stream
        if not isinstance(spool, SealedSpool):
            continue
        if not storage.filename and spool.size == 0:
            continue  # the browser sends an empty part when no file was chosen
        try:
            received.append(
                submission.check_upload(spool, storage.filename or "", storage.mimetype or "")
            )
        except submission.UploadRefused as exc:
            errors.append(_upload_message(exc.reason, exc.name, _settings()))
    budget = request.upload_budget  # type: ignore[attr-defined]  # the app's request class, IntakeRequest, has it
    if budget and budget.exceeded_total:
        errors.append(
            _(
                "All files together are too large. The limit is %(mib)s MB in all.",
                mib=_settings().max_submission_size // MIB,
            )
        )
    return received


def _check(form: Any) -> tuple[bool, bool]:
    """Validate; return (fields valid, token expired). An expired token is never the
    witness's fault, so it is reported apart and what they typed is shown again."""
    form.validate()
    token = getattr(form, "csrf_token", None)
    expired = bool(token and token.errors)
    if token is not None:
        token.errors = []
    return not form.errors, expired


EXPIRED = N_(
    "This page was open for a long time, so it was not sent yet. Your text is still "
    "here: please attach any files again and press Send."
)
FILES_AGAIN = N_("Files are not kept when the form comes back: please attach them again.")


def _per_hour(budget: Callable[[Settings], int]) -> Callable[[], str]:
    """A rate limit read from the settings of the app serving the request."""
    return lambda: "%d/hour" % budget(_settings())


@submit.route("/", methods=["GET", "POST"])
@limited(
    _per_hour(lambda s: s.submissions_per_hour),
    key_func=lambda: "all-submissions",
    scope="submit-global",
)
@limited(_per_hour(lambda s: s.submissions_per_client_hour), scope="submit-client")
def form() -> Any:
    settings = _settings()
    form = TestimonyForm()
    form.place.choices = place_choices(g.lang)
    if not submission.is_ready(_db()):
        return _not_ready()
    if request.method == "GET":
        return _render_form(form)
    notices: list[str] = []
    valid, expired = _check(form)
    if expired:
        return _render_form(form, notices=[_(EXPIRED)]), 400
    file_errors: list[str] = []
    files = _files(request.files.getlist(form.files.name), file_errors)
    has_audio = any(f.type.kind == "audio" for f in files)
    statement = (form.statement.data or "").strip()
    if not statement and not has_audio:
        form.statement.errors = [
            *form.statement.errors,
            _("Please write what happened, or attach an audio recording."),
        ]
        valid = False
    if form.website.data:
        form.website.errors = [_("Please leave this field empty.")]
        valid = False
    if not valid or file_errors:
        if file_errors or files:
            notices.append(_(FILES_AGAIN))
        return _render_form(form, file_errors=file_errors, notices=notices), 400
    sub = submission.Submission(
        statement=form.statement.data or "",
        when_date=form.when_date.data,
        when_approx=form.when_approx.data or "",
        place=form.place.data or "",
        place_other=form.place_other.data or "",
        relation=form.relation.data,
        consent=form.consent.data,
        contact=form.contact.data or "",
        language=g.lang,
        files=files,
    )
    try:
        code = submission.receive(_db(), settings, sub)
    except submission.NotReady:
        return _not_ready()
    return render_template("receipt.html", code=code, files=len(files))


def _render_form(
    form: TestimonyForm, file_errors: list[str] | None = None, notices: list[str] | None = None
) -> str:
    settings = _settings()
    form.files.description = _(
        "You can choose several files. Up to %(file)s MB each, %(total)s MB in all.",
        file=settings.max_file_size // MIB,
        total=settings.max_submission_size // MIB,
    )
    form.files.errors = [*form.files.errors, *(file_errors or [])]
    return render_template("submit.html", form=form, notices=notices or [])


BUSY = N_(
    "Many people are sending right now, so it was not sent yet. Your text is still "
    "here: please wait an hour and press Send again."
)


def _unavailable_notice() -> str:
    return "%s. %s" % (
        _("Please try again in a few minutes"),
        _(
            "Nothing was sent: this is a short problem on our side, not yours. "
            "Your text is still here."
        ),
    )


def _sent_files() -> bool:
    return any(f.filename for f in request.files.getlist("files"))


def _form_back(notice: str, status: int) -> Any:
    """The testimony form with what was typed and one notice; never a page that would
    send the witness Back to an empty form (nothing is kept in the browser's history,
    see ``autocomplete="off"``)."""
    form = TestimonyForm()
    form.place.choices = place_choices(g.lang)
    notices = [notice, _(FILES_AGAIN)] if _sent_files() else [notice]
    return _render_form(form, notices=notices), status


@submit.errorhandler(RateLimitExceeded)
def form_too_many(error: RateLimitExceeded) -> Any:
    """Too many submissions this hour: the form comes back with what was typed."""
    if request.method != "POST":
        return render_template("error.html", kind="too_many"), 429
    return _form_back(_(BUSY), 429)


def form_unavailable(error: Exception) -> Any:
    """The database or Redis is briefly out of reach (see :func:`store.web.unavailable`):
    nothing was stored; a sent form comes back with what was typed."""
    current_app.logger.error("backend unavailable: %s", type(error).__name__)
    if request.method != "POST" or request.endpoint != "submit.form":
        return render_template("error.html", kind="unavailable"), 503
    return _form_back(_unavailable_notice(), 503)


@welcome.route("/print", methods=["POST"])
def printable() -> Any:
    """The code again, on a page made for paper that does not say what the code is for
    (a found sheet must not give the witness away). The code comes back from the receipt
    page's own form: nothing on the server remembers it, and only a well-formed code is
    shown."""
    digits = receipts.normalize(request.form.get("code", ""))
    if digits is None:
        abort(400)
    code = " ".join(
        digits[i : i + receipts.GROUP] for i in range(0, receipts.DIGITS, receipts.GROUP)
    )
    return render_template("receipt_print.html", code=code)


def _receipt_key() -> str:
    digits = "".join(c for c in request.form.get("receipt", "") if c.isdigit())[:40]
    secret = _settings().secret_key
    return "receipt:" + hmac.new(secret, digits.encode(), hashlib.sha256).hexdigest()[:32]


@follow_up.route("/", methods=["GET", "POST"])
@limited(_per_hour(lambda s: s.lookups_per_client_hour), scope="receipt-client")
@limited(
    _per_hour(lambda s: s.lookups_per_hour), key_func=lambda: "all-lookups", scope="receipt-global"
)
def lookup() -> Any:
    form = ReceiptForm()
    if request.method == "GET":
        return render_template("receipt_lookup.html", form=form)
    valid, expired = _check(form)
    if expired or not valid:
        return render_template(
            "receipt_lookup.html", form=form, notices=[_(EXPIRED)] if expired else []
        ), 400
    found = submission.find(_db(), _settings(), form.receipt.data)
    if found is None:
        return render_template("receipt_lookup.html", form=form, failed=True), 404
    keys, testimony_id = found
    submission.upgrade_reply_key(_db(), keys, testimony_id)
    return _thread(form.receipt.data, keys, testimony_id, AddForm(formdata=None))


def _thread(
    code: str,
    keys: Any,
    testimony_id: int,
    add_form: AddForm,
    file_errors: list[str] | None = None,
    added: bool = False,
    status: int = 200,
    notices: list[str] | None = None,
) -> Any:
    add_form.receipt.data = code
    add_form.files.description = _("Up to %(file)s MB each.", file=_settings().max_file_size // MIB)
    add_form.files.errors = [*add_form.files.errors, *(file_errors or [])]
    view = submission.follow_up(_db(), keys, testimony_id)
    return render_template(
        "thread.html", view=view, form=add_form, notices=notices or [], added=added
    ), status


def _addition_back(notice: str, status: int) -> Any:
    """The addition form with what was typed, without the thread (opening it takes the
    receipt's key derivation, which the rate limits ration and which needs the database)."""
    form = AddForm()
    form.files.description = _("Up to %(file)s MB each.", file=_settings().max_file_size // MIB)
    notices = [notice, _(FILES_AGAIN)] if _sent_files() else [notice]
    return render_template(
        "thread.html", view=None, form=form, notices=notices, added=False
    ), status


@follow_up.errorhandler(RateLimitExceeded)
def follow_up_too_many(error: RateLimitExceeded) -> Any:
    """Too many look-ups or additions this hour; an addition comes back with its text."""
    if request.endpoint != "follow_up.add":
        return render_template("error.html", kind="too_many"), 429
    return _addition_back(_(BUSY), 429)


def addition_unavailable(error: Exception) -> Any:
    """As :func:`form_unavailable`, for the follow-up pages."""
    current_app.logger.error("backend unavailable: %s", type(error).__name__)
    if request.endpoint != "follow_up.add":
        return render_template("error.html", kind="unavailable"), 503
    return _addition_back(_unavailable_notice(), 503)


# The failures store.web.unavailable names; its rarer case, a connection invalidated under
# another database error, still gets the app's own 503 page.
for _kind in UNAVAILABLE_ERRORS:
    submit.register_error_handler(_kind, form_unavailable)
    follow_up.register_error_handler(_kind, addition_unavailable)


@follow_up.route("/add", methods=["POST"])
@limited(_per_hour(lambda s: s.follow_ups_per_hour), key_func=_receipt_key, scope="receipt-add")
@limited(_per_hour(lambda s: s.additions_per_client_hour), scope="add-client")
def add() -> Any:
    form = AddForm()
    found = submission.find(_db(), _settings(), form.receipt.data or "")
    if found is None:
        return render_template(
            "receipt_lookup.html", form=ReceiptForm(formdata=None), failed=True
        ), 404
    keys, testimony_id = found
    file_errors: list[str] = []
    files = _files(request.files.getlist(form.files.name), file_errors)
    valid, expired = _check(form)
    if expired or not valid or file_errors:
        notices = [_(EXPIRED)] if expired else []
        if (files or file_errors) and not expired:
            notices.append(_(FILES_AGAIN))
        return _thread(
            form.receipt.data, keys, testimony_id, form, file_errors, status=400, notices=notices
        )
    if not (form.statement.data or "").strip() and not files:
        form.statement.errors = [_("Please write something or attach a file.")]
        return _thread(form.receipt.data, keys, testimony_id, form, status=400)
    try:
        submission.add(_db(), testimony_id, form.statement.data or "", files, keys=keys)
    except submission.NotReady:
        return _not_ready()
    return _thread(form.receipt.data, keys, testimony_id, AddForm(formdata=None), added=True)
