"""The reviewer's forms (all with CSRF tokens).

They read the form's text fields only: every form is a :class:`store.web.PlainForm`."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from store.vocabulary import STATUSES
from store.web import PlainForm

STATUS_LABELS = {
    "new": _l("New"),
    "in_review": _l("In review"),
    "corroborated": _l("Corroborated"),
    "not_credible": _l("Not credible"),
    "withdrawn": _l("Withdrawn"),
}


RELATION_LABELS = {
    "saw": _l("Saw it"),
    "happened_to_me": _l("Happened to them"),
    "happened_to_family": _l("Happened to their family"),
    "heard": _l("Heard from others"),
}
CONSENT_LABELS = {
    "counts": _l("Counts only"),
    "quotes": _l("Counts and anonymized quotes"),
}


class LoginForm(PlainForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=80)])
    password = PasswordField(_l("Password"), validators=[InputRequired(), Length(max=1024)])
    code = StringField(
        _l("Code from your authenticator app"), validators=[InputRequired(), Length(max=12)]
    )


class ActionForm(PlainForm):
    """A button that changes something: only the CSRF token."""


class StatusForm(PlainForm):
    status = SelectField(_l("Status"), choices=[(s, STATUS_LABELS[s]) for s in STATUSES])


class AssignForm(PlainForm):
    reviewer = SelectField(_l("Assigned to"), choices=[], validate_choice=True)


class TextForm(PlainForm):
    text = TextAreaField(_l("Text"), validators=[InputRequired(), Length(max=20_000)])
