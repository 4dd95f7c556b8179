"""The witness's forms. Labels and messages are translated lazily per request.

Fields are filled from the form's text parts only (every form is a
:class:`store.web.PlainForm`); files are read by the views from ``request.files``."""

from __future__ import annotations

import datetime as dt
import unicodedata

from flask_babel import lazy_gettext as _l
from wtforms import (
    DateField,
    MultipleFileField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from store.vocabulary import CONSENTS, PLACES, RELATIONS, place_name
from store.web import PlainForm

STATEMENT_MAX = 100_000
_ALLOWED_CONTROLS = {"\n", "\r", "\t"}

RELATION_LABELS = {
    "saw": _l("I saw it myself"),
    "happened_to_me": _l("It happened to me"),
    "happened_to_family": _l("It happened to my family"),
    "heard": _l("I heard about it from others"),
}
CONSENT_LABELS = {
    "counts": _l("Only count my testimony in numbers. Do not quote my words."),
    "quotes": _l("You may also quote my words, without anything that shows who I am."),
}


def readable_text(form: PlainForm, field: StringField) -> None:
    """Refuse text that could not be read (broken encoding) or holds control characters."""
    value = field.data or ""
    if "\ufffd" in value:
        raise ValidationError(_l("Some characters could not be read. Please type them again."))
    for char in value:
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) in ("Cc", "Cs"):
            raise ValidationError(
                _l(
                    "The text contains hidden characters we cannot keep. "
                    "Please type it again instead of pasting it."
                )
            )


def plausible_date(form: PlainForm, field: DateField) -> None:
    if field.data and not dt.date(1990, 1, 1) <= field.data <= dt.date.today():
        raise ValidationError(_l("Please give a date between 1990 and today."))


def place_choices(language: str) -> list[tuple[str, str]]:
    return [("", str(_l("Choose a place (optional)")))] + [
        (code, place_name(code, language)) for code in PLACES
    ]


class TestimonyForm(PlainForm):
    statement = TextAreaField(
        _l("What happened?"),
        description=_l(
            "Write in your own words what you saw or lived through. Do not write "
            "your name. If you would rather speak, attach an audio recording "
            "below: then you do not need to write here."
        ),
        validators=[Length(max=STATEMENT_MAX), readable_text],
    )
    when_date = DateField(
        _l("When did it happen? (optional)"),
        validators=[Optional(), plausible_date],
        description=_l("The date, if you know it."),
    )
    when_approx = StringField(
        _l("Or say roughly when (optional)"),
        description=_l("For example: the night of 7 February 2020."),
        validators=[Optional(), Length(max=200), readable_text],
    )
    place = SelectField(
        _l("Where did it happen? (optional)"),
        choices=[],
        validate_choice=True,
        default="",
        description=_l("Choose the village or town."),
    )
    place_other = StringField(
        _l("Or name the place (optional)"),
        description=_l("A street, a building, or another village."),
        validators=[Optional(), Length(max=200), readable_text],
    )
    relation = RadioField(
        _l("How do you know what happened?"),
        choices=[(code, RELATION_LABELS[code]) for code in RELATIONS],
        description=_l("Choose the answer that fits best."),
        validators=[InputRequired(message=_l("Please choose one answer."))],
    )
    files = MultipleFileField(
        _l("Audio recording, photos, video or PDF (optional)"),
        description=_l(
            "You can choose several files. Up to %(file)s MB each, %(total)s MB in all."
        ),
    )
    contact = TextAreaField(
        _l("How can we contact you? (optional)"),
        description=_l(
            "Only if you want us to contact you. It is locked like everything "
            "else. You can also come back with your code instead."
        ),
        validators=[Optional(), Length(max=1000), readable_text],
    )
    consent = RadioField(
        _l("How may we use your testimony?"),
        choices=[(code, CONSENT_LABELS[code]) for code in CONSENTS],
        description=_l("Choose one. Either way, what you send stays locked."),
        validators=[InputRequired(message=_l("Please choose one answer."))],
    )
    # Honeypot: hidden from people by CSS, filled in by naive bots.
    website = StringField(_l("Leave this field empty"))


class ReceiptForm(PlainForm):
    receipt = StringField(
        _l("Your receipt code"),
        description=_l("20 digits. Spaces do not matter."),
        validators=[InputRequired(message=_l("Please enter your receipt code.")), Length(max=64)],
    )


class AddForm(PlainForm):
    receipt = StringField(validators=[InputRequired(), Length(max=64)])
    statement = TextAreaField(
        _l("Add to your testimony"),
        description=_l("Anything you want to add or correct, or an answer to a question."),
        validators=[Length(max=STATEMENT_MAX), readable_text],
    )
    files = MultipleFileField(
        _l("More files (optional)"), description=_l("Up to %(file)s MB each.")
    )
