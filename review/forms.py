"""The reviewer's forms (all with CSRF tokens).

They read the form's text fields only: every form is a :class:`store.web.PlainForm`."""

from __future__ import annotations

import json
import re
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import (
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    ValidationError,
)
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


# --- the incident catalogue's editor (admins) ------------------------------------------------
# Each form reads one entry of the catalogue; the view turns it into the file format's
# shape and store.incidents.save_* validates it against the schema and saves it.

SLUG = re.compile(r"^[a-z0-9][a-z0-9-_]{1,79}$")
WHEN = re.compile(r"^\d{4}-\d{2}(-\d{2}(T\d{2}:\d{2})?)?$")
PRECISIONS = ("exact", "approximate", "day", "month")
PLACE_KINDS = (
    "village",
    "town",
    "city",
    "district",
    "region",
    "border",
    "road",
    "facility",
    "country",
)
SOURCE_PARTS = ("title", "publisher", "url", "language", "date")

_NO_PLACE = _l("A place needs a short name, names in three languages and a district.")
_NO_ENTRY = _l("A vocabulary entry needs a short name and labels in three languages.")
_NO_TEXT = _l("An English title and description are required.")
_BAD_DATE = _l("Dates are written 2020-02-07, 2020-02-07T18:30 or 2020-04.")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _cut(limit: int) -> Any:
    return lambda value: value[:limit] if isinstance(value, str) else value


def _required(message: Any) -> Any:
    def check(form: Any, field: Any) -> None:
        if not field.data:
            raise ValidationError(str(message))

    return check


def _slug(message: Any) -> Any:
    def check(form: Any, field: Any) -> None:
        if not SLUG.match(field.data or ""):
            raise ValidationError(str(message))

    return check


def _when(form: Any, field: Any) -> None:
    if field.data and not WHEN.match(field.data):
        raise ValidationError(str(_BAD_DATE))


def _one_of(choices: tuple[str, ...], message: Any) -> Any:
    def check(form: Any, field: Any) -> None:
        if field.data not in choices:
            raise ValidationError(str(message))

    return check


def _degrees(limit: float) -> Any:
    def check(form: Any, field: Any) -> None:
        try:
            value = float(field.data or "")
        except ValueError:
            value = float("nan")
        if not -limit <= value <= limit:  # NaN and infinity fail too
            raise ValidationError(str(_l("Give coordinates in degrees.")))

    return check


def _figures(form: Any, field: Any) -> None:
    try:
        figures = json.loads(field.data or "{}")
    except ValueError:
        figures = None
    if not isinstance(figures, dict) or not all(
        type(v) is int and v >= 0 for v in figures.values()
    ):
        raise ValidationError(
            str(_l('Figures must be a JSON object of whole numbers, like {"killed": 11}.'))
        )


def source_lines(text: str) -> list[list[str]]:
    """The editor's sources, one a line: title | publisher | URL | language | date."""
    return [
        [part.strip() for part in line.split("|")][: len(SOURCE_PARTS)]
        for line in text.splitlines()
        if line.strip()
    ]


def _sources(form: Any, field: Any) -> None:
    lines = source_lines(field.data or "")
    if any(len(parts) < 2 or not parts[0] or not parts[1] for parts in lines):
        raise ValidationError(str(_l("Each source line needs at least a title and a publisher.")))


class PlaceForm(PlainForm):
    """A place of the gazetteer; the same short name changes it."""

    lat = StringField(_l("Latitude"), filters=[_strip], validators=[_degrees(90)])
    lon = StringField(_l("Longitude"), filters=[_strip], validators=[_degrees(180)])
    slug = StringField(_l("Short name"), filters=[_strip], validators=[_slug(_NO_PLACE)])
    name_en = StringField("English", filters=[_strip, _cut(300)], validators=[_required(_NO_PLACE)])
    name_ru = StringField("Русский", filters=[_strip, _cut(300)], validators=[_required(_NO_PLACE)])
    name_kk = StringField("Қазақша", filters=[_strip, _cut(300)], validators=[_required(_NO_PLACE)])
    district = StringField(
        _l("District"), filters=[_strip, _cut(120)], validators=[_required(_NO_PLACE)]
    )
    kind = SelectField(_l("Kind"), choices=[(k, k) for k in PLACE_KINDS], default="village")


class ViolationTypeForm(PlainForm):
    """An entry of the violation vocabulary, under another or at the top (parent "")."""

    slug = StringField(_l("Short name"), filters=[_strip], validators=[_slug(_NO_ENTRY)])
    parent = SelectField(_l("Under"), choices=[("", "—")], default="")
    label_en = StringField(
        "English", filters=[_strip, _cut(300)], validators=[_required(_NO_ENTRY)]
    )
    label_ru = StringField(
        "Русский", filters=[_strip, _cut(300)], validators=[_required(_NO_ENTRY)]
    )
    label_kk = StringField(
        "Қазақша", filters=[_strip, _cut(300)], validators=[_required(_NO_ENTRY)]
    )


class IncidentForm(PlainForm):
    """An incident; ``slug`` is read only when one is created (set ``new`` then)."""

    slug = StringField(_l("Short name (a–z, 0–9, - and _)"), filters=[_strip])
    title_en = StringField(
        _l("Title (English)"), filters=[_strip], validators=[_required(_NO_TEXT)]
    )
    title_ru = StringField(_l("Title (Russian)"), filters=[_strip])
    description_en = TextAreaField(
        _l("Description (English)"), filters=[_strip], validators=[_required(_NO_TEXT)]
    )
    description_ru = TextAreaField(_l("Description (Russian)"), filters=[_strip])
    start = StringField(_l("Start"), filters=[_strip], validators=[_required(_BAD_DATE), _when])
    end = StringField(_l("End"), filters=[_strip], validators=[_when])
    precision = SelectField(
        _l("Precision"),
        choices=[(p, p) for p in PRECISIONS],
        default="day",
        validate_choice=False,
        validators=[_one_of(PRECISIONS, _l("Choose a date precision."))],
    )
    places = SelectMultipleField(_l("Places"), choices=[])
    violation_types = SelectMultipleField(_l("Violations"), choices=[])
    figures = StringField(
        _l("Figures (JSON)"), filters=[_strip], default="{}", validators=[_figures]
    )
    figures_note = StringField(_l("Note on the figures"), filters=[_strip])
    sources = TextAreaField(
        _l("Sources, one a line: title | publisher | URL | language | date"),
        validators=[_sources],
    )
