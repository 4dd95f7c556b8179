"""The export in the review face, as blueprints named for what a reviewer does:
``excerpts`` (make an excerpt from a testimony whose witness consented to quotes, mask
or override personal data, approve) and ``export`` (administrators build a signed ZIP).
Messages are flashed from fixed texts, never read from the URL."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Excerpt, Incident, Testimony

from ..access import excerpt_or_403, testimony_or_403
from ..catalogue import label
from ..current import actor as _actor
from ..current import db as _db
from ..forms import ActionForm
from ..roles import admin_only
from . import build, excerpts, pii, signing
from .cli import ZIP_TIME

excerpt_pages = Blueprint("excerpts", __name__)
export_page = Blueprint("export", __name__, url_prefix="/export")
BLUEPRINTS = [excerpt_pages, export_page]

KIND_LABELS = {
    "name": _l("Name"),
    "phone": _l("Phone number"),
    "iin": _l("IIN"),
    "email": _l("E-mail address"),
    "address": _l("Address"),
    "plate": _l("Vehicle plate"),
    "birth_date": _l("Date of birth"),
}
REFUSALS = {
    "consent": _l("The witness did not agree to be quoted: no excerpt can be made."),
    "empty": _l("An excerpt needs some text."),
    "long": _l("An excerpt is at most 5000 characters."),
    "reason": _l("Give a reason for keeping it."),
    "finding": _l("That finding is no longer in the excerpt."),
    "unresolved": _l("Mask or keep (with a reason) every finding before approving."),
}


@excerpt_pages.app_context_processor
def excerpt_section() -> dict[str, Any]:
    """What the testimony page's excerpt section lists (no text: only status and day)."""

    def excerpts_of(testimony_id: int) -> list[Excerpt]:
        with _db().sessions() as session:
            return excerpts.of_testimony(session, testimony_id)

    return {"excerpts_of": excerpts_of}


@excerpt_pages.route("/testimony/<int:testimony_id>/excerpts/new", methods=["GET", "POST"])
def new(testimony_id: int) -> Any:
    from ..reading import read_testimony

    with _db().transaction() as session:
        item = testimony_or_403(session, testimony_id)
        if item.consent != excerpts.QUOTABLE:
            flash(REFUSALS["consent"], "error")
            return redirect(url_for("testimony.show", testimony_id=testimony_id))
        if request.method == "POST":
            try:
                made = excerpts.create(
                    session, item, g.reviewer.id, _actor(), request.form.get("text", "")
                )
            except excerpts.ExcerptError as refused:
                flash(REFUSALS[refused.code], "error")
                return redirect(url_for("excerpts.new", testimony_id=testimony_id))
            return redirect(url_for("excerpts.edit", excerpt_id=made.id))
        view = read_testimony(session, item, g.identity)
        from store import audit

        audit.append(
            session,
            _actor(),
            "testimony.unseal",
            "testimony:%d" % testimony_id,
            {"for": "excerpt", "unreadable": len(view.unreadable)},
        )
        prefill = "\n\n".join(text for _day, text in view.statements)
        return render_template("excerpts/new.html", item=item, prefill=prefill, action=ActionForm())


@excerpt_pages.route("/excerpts/<int:excerpt_id>")
def edit(excerpt_id: int) -> Any:
    with _db().transaction() as session:
        found = excerpt_or_403(session, excerpt_id)
        view = excerpts.read(session, found, g.identity)
        from store import audit

        audit.append(session, _actor(), "excerpt.unseal", "excerpt:%d" % excerpt_id)
        segments = _segments(view.text, view.findings, view.overridden)
        return render_template(
            "excerpts/edit.html",
            view=view,
            excerpt=found,
            segments=segments,
            kinds=KIND_LABELS,
            action=ActionForm(),
        )


def _segments(
    text: str, findings: list[pii.Finding], overridden: set[str]
) -> list[tuple[str, pii.Finding | None, bool]]:
    """The text cut into plain runs and findings, for highlighting (escaped by Jinja)."""
    out: list[tuple[str, pii.Finding | None, bool]] = []
    at = 0
    for finding in findings:
        if finding.start > at:
            out.append((text[at : finding.start], None, False))
        out.append((finding.text, finding, finding.key in overridden))
        at = finding.end
    if at < len(text):
        out.append((text[at:], None, False))
    return out


def _act(excerpt_id: int, action: Any, done: str | None = None) -> Any:
    try:
        with _db().transaction() as session:
            found = excerpt_or_403(session, excerpt_id)
            action(session, found)
    except excerpts.ExcerptError as refused:
        flash(REFUSALS[refused.code], "error")
    else:
        if done:
            flash(done)
    return redirect(url_for("excerpts.edit", excerpt_id=excerpt_id))


def _language(session: Session, found: Excerpt) -> str:
    testimony = session.get(Testimony, found.testimony_id)
    return testimony.language if testimony else "ru"


@excerpt_pages.route("/excerpts/<int:excerpt_id>/text", methods=["POST"])
def save_text(excerpt_id: int) -> Any:
    return _act(
        excerpt_id,
        lambda session, found: excerpts.edit(
            session, found, g.identity, g.reviewer.id, _actor(), request.form.get("text", "")
        ),
        _("Excerpt saved: it is a draft again and is checked anew."),
    )


@excerpt_pages.route("/excerpts/<int:excerpt_id>/mask", methods=["POST"])
def mask(excerpt_id: int) -> Any:
    key = request.form.get("key")
    return _act(
        excerpt_id,
        lambda session, found: excerpts.mask(
            session,
            found,
            g.identity,
            g.reviewer.id,
            _actor(),
            _language(session, found),
            {key} if key else None,
        ),
    )


@excerpt_pages.route("/excerpts/<int:excerpt_id>/keep", methods=["POST"])
def keep(excerpt_id: int) -> Any:
    return _act(
        excerpt_id,
        lambda session, found: excerpts.override(
            session,
            found,
            g.identity,
            g.reviewer.id,
            _actor(),
            request.form.get("key", ""),
            request.form.get("reason", ""),
        ),
    )


@excerpt_pages.route("/excerpts/<int:excerpt_id>/approve", methods=["POST"])
def approve(excerpt_id: int) -> Any:
    return _act(
        excerpt_id,
        lambda session, found: excerpts.approve(
            session, found, g.identity, g.reviewer.id, _actor()
        ),
        _("Excerpt approved: it will be in the next export."),
    )


@excerpt_pages.route("/excerpts/<int:excerpt_id>/delete", methods=["POST"])
def delete(excerpt_id: int) -> Any:
    with _db().transaction() as session:
        found = excerpt_or_403(session, excerpt_id)
        testimony_id = found.testimony_id
        excerpts.remove(session, found, _actor())
    flash(_("Excerpt deleted."))
    return redirect(url_for("testimony.show", testimony_id=testimony_id) + "#excerpts")


# --- the export page (administrators) ----------------------------------------------------


@export_page.route("/", methods=["GET", "POST"])
@admin_only
def page() -> Any:
    with _db().sessions() as session:
        incidents = list(
            session.execute(
                select(Incident.slug, Incident.title, Incident.start).order_by(
                    Incident.start, Incident.slug
                )
            ).all()
        )
        key = signing.instance_public_key(session)
    error = None
    if request.method == "POST":
        try:
            options = build.Options(
                k=int(request.form.get("k", "5") or 5),
                incidents=request.form.getlist("incident"),
                granularity=request.form.get("granularity", "day"),
                language=request.form.get("language", "en"),
            )
            with _db().transaction() as session:
                made = build.build(session, g.identity, options, _actor())
        except ValueError:
            error = _("Check the options: k is a whole number from 3 to 1000.")
        except signing.ExportKeyError:
            error = _(
                "The export key is not shared with you yet: ask an administrator "
                "who can read older testimony to share it with you."
            )
        else:
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
                for name, data in made.files.items():
                    out.writestr(
                        zipfile.ZipInfo(name, ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED
                    )
            archive.seek(0)
            return send_file(
                archive,
                mimetype="application/zip",
                as_attachment=True,
                download_name="testimony-export-%s.zip" % made.generated_on,
            )
    return render_template(
        "export/page.html",
        incidents=incidents,
        label=label,
        fingerprint=signing.fingerprint(key) if key else None,
        action=ActionForm(),
        error=error,
        form=request.form if request.method == "POST" else {},
    ), 400 if error else 200
