"""The reviewer's pages, as blueprints named for what a reviewer does: ``auth`` (log in
and out), ``inbox`` (find testimony), ``testimony`` (read, tag status, note, answer),
``search`` (full text, unsealed in memory), ``reviewers`` (share and disable)."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask import (
    session as flask_session,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.blobs import active_recipients, open_document, read_item, seal_document
from store.models import (
    Attachment,
    Incident,
    Message,
    Note,
    Reviewer,
    ViolationType,
)
from store.vocabulary import LANGUAGES, PLACES, RELATIONS, STATUSES, place_name

from . import accounts, reading, sessions, sharing
from . import search as full_text
from .access import attachment_or_403, refuse, testimony_or_403
from .catalogue import label, mapping_context
from .current import actor as _actor
from .current import db as _db
from .current import settings as _settings
from .forms import (
    CONSENT_LABELS,
    RELATION_LABELS,
    STATUS_LABELS,
    ActionForm,
    AssignForm,
    LoginForm,
    StatusForm,
    TextForm,
)
from .roles import admin_only
from .sessions import SESSION_COOKIE

auth = Blueprint("auth", __name__)
inbox = Blueprint("inbox", __name__)
testimony = Blueprint("testimony", __name__, url_prefix="/testimony")
search = Blueprint("search", __name__, url_prefix="/search")
reviewers = Blueprint("reviewers", __name__, url_prefix="/reviewers")
BLUEPRINTS = [auth, inbox, testimony, search, reviewers]
PER_PAGE = 50
T = TypeVar("T")


def _record(session: Session, action: str, subject: str, **details: object) -> None:
    audit.append(session, _actor(), action, subject, details)


# --- auth ----------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("inbox.index")


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        with _db().transaction() as session:
            try:
                reviewer, identity = accounts.login(
                    session, _settings(), form.name.data, form.password.data, form.code.data
                )
            except accounts.LoginFailed:
                failed = True
            else:
                sessions.end_session(session, request.cookies.get(SESSION_COOKIE))
                cookie = sessions.open_session(session, _settings(), reviewer, identity)
                audit.append(
                    session, "reviewer:%s" % reviewer.name, "login", "reviewer:%s" % reviewer.name
                )
        if not failed:
            flask_session.clear()  # a fresh CSRF secret: nothing from before login survives
            response = redirect(_safe_next(request.args.get("next")))
            response.set_cookie(
                SESSION_COOKIE,
                cookie,
                httponly=True,
                samesite="Strict",
                secure=_settings().cookie_secure,
                path="/",
            )
            return response
    elif request.method == "POST":
        failed = True
    return render_template("login.html", form=form, failed=failed), 401 if failed else 200


@auth.route("/logout", methods=["POST"])
def logout() -> Any:
    with _db().transaction() as session:
        sessions.end_session(session, request.cookies.get(SESSION_COOKIE))
        _record(session, "logout", "reviewer:%s" % g.reviewer.name)
    flask_session.clear()
    response = redirect(url_for("auth.login"))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- inbox ---------------------------------------------------------------------------------

FILTERS = ("status", "place", "language", "relation", "assigned", "incident", "tag", "from", "to")


@inbox.route("/")
def index() -> Any:
    filters = {name: request.args.get(name, "").strip() for name in FILTERS}
    # Past the last page the inbox is empty; a huge number would overflow the database.
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 2**31 // PER_PAGE)
    with _db().sessions() as session:
        rows, total = reading.inbox(session, filters, page, PER_PAGE)
        names = dict(session.execute(select(Reviewer.id, Reviewer.name)).all())
        incidents = list(
            session.execute(
                select(Incident.slug, Incident.title, Incident.start).order_by(Incident.start)
            ).all()
        )
        tags = list(
            session.execute(
                select(ViolationType.slug, ViolationType.labels).order_by(ViolationType.slug)
            ).all()
        )
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    return render_template(
        "inbox.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        filters=filters,
        statuses=STATUSES,
        status_labels=STATUS_LABELS,
        places=PLACES,
        languages=LANGUAGES,
        relations=RELATIONS,
        names=names,
        place_name=place_name,
        incidents=incidents,
        tags=tags,
        label=label,
        page_url=lambda n: url_for(
            "inbox.index", **{**{k: v for k, v in filters.items() if v}, "page": n}
        ),
    )


# --- one testimony -------------------------------------------------------------------------


def _assign_form(session: Session) -> AssignForm:
    form = AssignForm()
    form.reviewer.choices = [("", _("Nobody"))] + [
        (str(r.id), r.name)
        for r in session.scalars(
            select(Reviewer).where(Reviewer.active.is_(True)).order_by(Reviewer.name)
        )
    ]
    return form


@testimony.route("/<int:testimony_id>")
def show(testimony_id: int, contact: str | None = None) -> Any:
    with _db().transaction() as session:
        item = testimony_or_403(session, testimony_id)
        view = reading.read_testimony(session, item, g.identity)
        _record(
            session,
            "testimony.unseal",
            "testimony:%d" % testimony_id,
            unreadable=len(view.unreadable),
        )
        assign = _assign_form(session)
        assign.reviewer.data = str(item.assigned_to or "")
        status = StatusForm(status=item.status)
        return render_template(
            "testimony.html",
            view=view,
            item=item,
            contact=contact,
            status_form=status,
            assign_form=assign,
            note_form=TextForm(prefix="note"),
            reply_form=TextForm(prefix="reply"),
            action=ActionForm(),
            status_labels=STATUS_LABELS,
            relation_labels=RELATION_LABELS,
            consent_labels=CONSENT_LABELS,
            place_name=place_name,
            **mapping_context(session, item),
        )


@testimony.route("/<int:testimony_id>/contact", methods=["POST"])
def reveal_contact(testimony_id: int) -> Any:
    with _db().transaction() as session:
        item = testimony_or_403(session, testimony_id)
        contact_id = item.contact_blob_id
        if contact_id is None:
            abort(404)
        document = _opened(lambda: open_document(session, contact_id, [g.identity]))
        _record(session, "contact.reveal", "testimony:%d" % testimony_id)
    return show(testimony_id, contact=str(document.get("contact", "")))


@testimony.route("/<int:testimony_id>/status", methods=["POST"])
def set_status(testimony_id: int) -> Any:
    with _db().transaction() as session:
        item = testimony_or_403(session, testimony_id)
        form = StatusForm()
        form.validate_on_submit() or abort(400)
        old, item.status = item.status, form.status.data
        _record(
            session, "testimony.status", "testimony:%d" % testimony_id, old=old, new=item.status
        )
    return redirect(url_for("testimony.show", testimony_id=testimony_id))


@testimony.route("/<int:testimony_id>/assign", methods=["POST"])
def assign(testimony_id: int) -> Any:
    with _db().transaction() as session:
        item = testimony_or_403(session, testimony_id)
        form = _assign_form(session)
        form.validate_on_submit() or abort(400)
        item.assigned_to = int(form.reviewer.data) if form.reviewer.data else None
        _record(
            session, "testimony.assign", "testimony:%d" % testimony_id, reviewer=item.assigned_to
        )
    return redirect(url_for("testimony.show", testimony_id=testimony_id))


@testimony.route("/<int:testimony_id>/note", methods=["POST"])
def add_note(testimony_id: int) -> Any:
    with _db().transaction() as session:
        item = testimony_or_403(session, testimony_id)
        form = TextForm(prefix="note")
        form.validate_on_submit() or abort(400)
        blob = seal_document(session, {"text": form.text.data})
        session.add(
            Note(
                testimony_id=item.id,
                reviewer_id=g.reviewer.id,
                written_on=accounts.now().date(),
                blob_id=blob.id,
            )
        )
        _record(session, "note.add", "testimony:%d" % testimony_id)
    return redirect(url_for("testimony.show", testimony_id=testimony_id) + "#notes")


@testimony.route("/<int:testimony_id>/reply", methods=["POST"])
def reply(testimony_id: int) -> Any:
    with _db().transaction() as session:
        item = testimony_or_403(session, testimony_id)
        form = TextForm(prefix="reply")
        form.validate_on_submit() or abort(400)
        # A witness who has not come back since the instance moved to post-quantum
        # keys still holds a classic reply key: their reply may mix key types.
        blob = seal_document(
            session,
            {"text": form.text.data},
            readers=[item.witness.reply_recipient],
            allow_mixed=True,
        )
        session.add(
            Message(
                testimony_id=item.id,
                sent_on=accounts.now().date(),
                blob_id=blob.id,
                reviewer_id=g.reviewer.id,
            )
        )
        _record(session, "message.send", "testimony:%d" % testimony_id)
    return redirect(url_for("testimony.show", testimony_id=testimony_id) + "#messages")


def _opened(unseal: Callable[[], T]) -> T:
    """What ``unseal`` opens, for a testimony the reviewer may open; an item of it that
    is not (yet) sealed to them (one added while their key was being shared) answers 403
    like the testimony would, not 500."""
    try:
        return unseal()
    except crypto.NoIdentityMatchError:
        refuse()


def _attachment_blob(session: Session, attachment_id: int, which: str) -> tuple[Attachment, int]:
    attachment = attachment_or_403(session, attachment_id)
    blob_id = attachment.working_blob_id if which == "working" else attachment.original_blob_id
    if blob_id is None:
        abort(404)
    return attachment, blob_id


@testimony.route("/file/<int:attachment_id>/view")
def working_copy(attachment_id: int) -> Any:
    """The metadata-stripped working copy of a photo, for display."""
    with _db().transaction() as session:
        attachment, blob_id = _attachment_blob(session, attachment_id, "working")
        data = _opened(lambda: read_item(session, blob_id, [g.identity]))
        _record(session, "file.view", "attachment:%d" % attachment_id)
    mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    response = make_response(data)
    response.headers["Content-Type"] = mime
    response.headers["Content-Disposition"] = "inline"
    return response


@testimony.route("/file/<int:attachment_id>/original", methods=["POST"])
def original(attachment_id: int) -> Any:
    """Download the original exactly as received (audited)."""
    with _db().transaction() as session:
        attachment, blob_id = _attachment_blob(session, attachment_id, "original")
        meta = json.loads(
            _opened(lambda: read_item(session, attachment.metadata_blob_id, [g.identity]))
        )
        data = _opened(lambda: read_item(session, blob_id, [g.identity]))
        _record(session, "file.download", "attachment:%d" % attachment_id)
    extension = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}.get(
        meta.get("detected_type", ""), "bin"
    )
    return send_file(
        io.BytesIO(data),
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name="testimony-file-%d.%s" % (attachment_id, extension),
    )


# --- search --------------------------------------------------------------------------------


@search.route("/")
def results() -> Any:
    query = request.args.get("q", "").strip()[:200]
    hits: list[full_text.SearchHit] = []
    searched = 0
    if len(query) >= 2:
        with _db().transaction() as session:
            hits, searched = full_text.search(session, g.identity, query)
            # The words searched for may themselves identify someone: not recorded.
            _record(session, "search", "statements", searched=searched, hits=len(hits))
    return render_template("search.html", query=query, hits=hits, searched=searched)


# --- reviewers -----------------------------------------------------------------------------


def _anchor_state(session: Session) -> dict[str, Any]:
    """For administrators: the last audit anchor's age in days (None: never taken), and
    whether to remind them to take one (TESTIMONY_ANCHOR_REMIND_DAYS; 0: never)."""
    day = audit.last_anchor_day(session)
    age = (dt.datetime.now(dt.UTC).date() - day).days if day else None
    limit = _settings().anchor_remind_days
    return {"anchor_age": age, "anchor_remind": bool(limit) and (age is None or age > limit)}


@reviewers.route("/")
def listing() -> Any:
    with _db().sessions() as session:
        people = list(session.scalars(select(Reviewer).order_by(Reviewer.name)))
        recipients = len(active_recipients(session))
        anchor = _anchor_state(session) if g.reviewer.is_admin else {}
    return render_template(
        "reviewers.html", people=people, action=ActionForm(), recipients=recipients, **anchor
    )


def _reviewer(session: Session, reviewer_id: int) -> Reviewer:
    person = session.get(Reviewer, reviewer_id)
    if person is None:
        abort(404)
    return person


@reviewers.route("/<int:reviewer_id>/grant", methods=["POST"])
def grant(reviewer_id: int) -> Any:
    with _db().transaction() as session:
        person = _reviewer(session, reviewer_id)
        if not person.active:
            abort(400)
        done = sharing.grant(session, [g.identity], person, _actor())
    message = ngettext(
        "%(name)s can now read %(num)d more sealed item.",
        "%(name)s can now read %(num)d more sealed items.",
        done.changed,
        name=person.name,
    )
    if done.skipped:
        message += " " + ngettext(
            "%(num)d item could not be shared: you cannot open it yourself.",
            "%(num)d items could not be shared: you cannot open them yourself.",
            done.skipped,
        )
    flash(message)
    return redirect(url_for("reviewers.listing"))


@reviewers.route("/<int:reviewer_id>/disable", methods=["POST"])
@admin_only
def disable(reviewer_id: int) -> Any:
    with _db().transaction() as session:
        person = _reviewer(session, reviewer_id)
        if person.id == g.reviewer.id:
            abort(400)
        done = sharing.disable(session, [g.identity], person, _actor())
    message = ngettext(
        "%(name)s is disabled and can no longer open %(num)d sealed item.",
        "%(name)s is disabled and can no longer open %(num)d sealed items.",
        done.changed,
        name=person.name,
    )
    if done.skipped:
        message += " " + ngettext(
            "%(num)d item still names them: an administrator must run "
            "“testimony reviewer disable” with the recovery key.",
            "%(num)d items still name them: an administrator must run "
            "“testimony reviewer disable” with the recovery key.",
            done.skipped,
        )
    flash(message)
    return redirect(url_for("reviewers.listing"))
