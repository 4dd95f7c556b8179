"""The controlled vocabulary both faces use, in one place: places, the witness's relation
to events, consent, testimony statuses, the interface languages.

Place names are given in English, Russian and Kazakh; other labels are translated in the
faces' message catalogues. Codes are what the database stores.
"""

from __future__ import annotations

# The witness face's languages (also the languages a testimony is written in), and how
# its language switch names each one, in that language.
LANGUAGES = ("ru", "kk", "en")
DEFAULT_LANGUAGE = "ru"
LANGUAGE_LABELS = (("ru", "Русский"), ("kk", "Қазақша"), ("en", "English"))

# The review face's interface languages (and those an export's summary is written in).
REVIEW_LANGUAGES = ("en", "ru")
REVIEW_DEFAULT_LANGUAGE = "en"

# Places of the February 2020 events in Korday District, Zhambyl Region, Kazakhstan, as
# the witness form offers them. Codes are the gazetteer's slugs (store/data/korday-2020.json),
# so a testimony's place and an incident's place are the same code.
PLACES: dict[str, dict[str, str]] = {
    "masanchi": {"en": "Masanchi", "ru": "Масанчи", "kk": "Масаншы"},
    "sortobe": {"en": "Sortobe", "ru": "Сортобе", "kk": "Сортөбе"},
    "bular-batyr": {"en": "Bular Batyr", "ru": "Булар-Батыр", "kk": "Бұлар батыр"},
    "aukhatty": {"en": "Aukhatty", "ru": "Аухатты", "kk": "Ауқатты"},
    "korday": {"en": "Korday", "ru": "Кордай", "kk": "Қордай"},
    "otar": {"en": "Otar", "ru": "Отар", "kk": "Отар"},
    "korday-district": {
        "en": "Elsewhere in Korday District",
        "ru": "Другое место в Кордайском районе",
        "kk": "Қордай ауданындағы басқа жер",
    },
    "other": {"en": "Somewhere else", "ru": "Другое место", "kk": "Басқа жер"},
}

RELATIONS = ("saw", "happened_to_me", "happened_to_family", "heard")
CONSENTS = ("counts", "quotes")
STATUSES = ("new", "in_review", "corroborated", "not_credible", "withdrawn")


def place_name(code: str, language: str) -> str:
    names = PLACES.get(code)
    if not names:
        return code
    return names.get(language) or names["en"]
