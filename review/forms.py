"""The reviewer's forms (all with CSRF tokens).

They read the form's text fields only. Flask-WTF would otherwise also fill fields from
file parts and from a JSON body, handing validators objects that are not text (a file, a
number, a list): a crafted request then crashed the page instead of being refused."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm as _FlaskForm
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from store.vocabulary import STATUSES

_FROM_REQUEST = object()


class FlaskForm(_FlaskForm):
    """A form filled from the request's text fields when submitted (or from
    ``formdata`` when given, ``None`` for an empty form)."""

    def __init__(self, formdata: Any = _FROM_REQUEST, **kwargs: Any) -> None:
        if formdata is _FROM_REQUEST:
            formdata = (
                request.form if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
            )
        super().__init__(formdata=formdata, **kwargs)


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


class LoginForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=80)])
    password = PasswordField(_l("Password"), validators=[InputRequired(), Length(max=1024)])
    code = StringField(
        _l("Code from your authenticator app"), validators=[InputRequired(), Length(max=12)]
    )


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class StatusForm(FlaskForm):
    status = SelectField(_l("Status"), choices=[(s, STATUS_LABELS[s]) for s in STATUSES])


class AssignForm(FlaskForm):
    reviewer = SelectField(_l("Assigned to"), choices=[], validate_choice=True)


class TextForm(FlaskForm):
    text = TextAreaField(_l("Text"), validators=[InputRequired(), Length(max=20_000)])
