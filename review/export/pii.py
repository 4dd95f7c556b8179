"""Finding personal data in an excerpt before it may be approved for publication.

Threat: a quoted passage names a neighbour, gives a phone number, an IIN, an address, a
car plate or a birthday, and so identifies the witness or someone they speak of.
Guarantee: :func:`find` reports every match of the detectors below, each as a span of
the text with a kind; an excerpt is approved only when every finding is masked (replaced
by a placeholder such as ``[имя]``) or overridden with a reason. Detectors err on the
side of reporting: a false finding costs a click, a missed one can cost a life.

- names: the Russian NER model of natasha (loaded once per process, on first use), the
  names recorded in the instance (reviewers, and people named in incident texts), a
  list of common Kazakh and Dungan given names and surnames, and surname and patronymic
  endings (-ов, -ева, -улы, -қызы, -ахунов, -ович…) on capitalised words;
- phone numbers: libphonenumber (Kazakhstan by default, any number written with +);
- Kazakh IIN: 12 digits whose check digit is right;
- e-mail addresses; street addresses (ул., улица, көшесі, мкр., дом, кв.…);
- vehicle plates: current Kazakh (123 ABC 02) and older (A 123 BCD) forms;
- dates of birth: a date or year next to "родился", "г.р.", "туған", "born"…

Misuse: this is a safety net for a reviewer who reads the excerpt, not a replacement:
nicknames, relations ("the imam's son"), rare professions and descriptions of events are
not detected.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers

KINDS = ("name", "phone", "iin", "email", "address", "plate", "birth_date")
PLACEHOLDERS = {
    "name": {"en": "[name]", "ru": "[имя]", "kk": "[есім]"},
    "phone": {"en": "[phone]", "ru": "[телефон]", "kk": "[телефон]"},
    "iin": {"en": "[IIN]", "ru": "[ИИН]", "kk": "[ЖСН]"},
    "email": {"en": "[e-mail]", "ru": "[e-mail]", "kk": "[e-mail]"},
    "address": {"en": "[address]", "ru": "[адрес]", "kk": "[мекенжай]"},
    "plate": {"en": "[plate]", "ru": "[номер машины]", "kk": "[көлік нөмірі]"},
    "birth_date": {"en": "[date of birth]", "ru": "[дата рождения]", "kk": "[туған күні]"},
}


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str

    @property
    def key(self) -> str:
        """What an override refers to: the kind and the words, spacing and case aside."""
        return "%s:%s" % (self.kind, " ".join(self.text.split()).casefold())


# --- names -----------------------------------------------------------------------------

# Common given names (Kazakh, Dungan, Russian forms used in the region) and Dungan
# surnames, as written in Cyrillic; a finding needs only one of them.
GIVEN_NAMES = frozenset(
    """
айгуль айгүл айдос айжан айнур айша аиша алия алмас асель асан асхат ахмед бауыржан бахыт
бекзат болат гульнара гүлнар дамир дана данияр динара ербол ерлан ержан жанар жандос
жанна зарина ильяс ислам кайрат қайрат куаныш қуаныш мадина мамед марат медет мурат
нурлан нұрлан нургуль руслан салтанат самал санжар серик серік талгат тимур улан фатима
хасан хусей хусейн юсуп якуб ясын мухаммед мухамед мансур махмуд абдулла сулейман
дзюнь шимар мусаха ванхуа
""".split()
)
DUNGAN_SURNAMES = frozenset(
    """
ма ван су ху ли ян бай ша хэ лю юсупов мансуров сушанло шиваза дуваза ахунов
""".split()
)
SURNAME_ENDINGS = re.compile(
    r"(?:ов|ев|ёв|ин|ын|ова|ева|ёва|ина|ына|ский|ская|енко|улы|ұлы|уулу|кызы|қызы|"
    r"ахун|ахунов|ахунова|шанло|ович|евич|овна|евна|ична|лович|ловна)$"
)
_CAPITALISED = re.compile(
    r"\b[А-ЯЁӘҒҚҢӨҰҮҺІA-Z][а-яёәғқңөұүһіa-z]+(?:-[А-ЯЁӘҒҚҢӨҰҮҺІA-Z]"
    r"[а-яёәғқңөұүһіa-z]+)?"
)

_ner_lock = threading.Lock()
_ner: Any = None


def _natasha() -> Any:
    """(segmenter, tagger), loaded once per process: the model takes about a second."""
    global _ner
    with _ner_lock:
        if _ner is None:
            from natasha import NewsEmbedding, NewsNERTagger, Segmenter

            _ner = (Segmenter(), NewsNERTagger(NewsEmbedding()))
            _tag(_ner, "Иван Иванов пришёл домой.")  # the first tagging is slow: do it now
        return _ner


def _tag(ner: Any, text: str) -> list[tuple[int, int]]:
    from natasha import Doc

    segmenter, tagger = ner
    doc = Doc(text)
    doc.segment(segmenter)
    doc.tag_ner(tagger)
    return [(span.start, span.stop) for span in doc.spans if span.type == "PER"]


def _model_names(text: str) -> list[tuple[int, int]]:
    return _tag(_natasha(), text)


def person_names(text: str) -> list[str]:
    """Names the model finds in ``text`` (used on incident texts)."""
    return [text[a:b] for a, b in _model_names(text)]


def _listed_names(text: str) -> list[tuple[int, int]]:
    """Runs of capitalised words of which one is a listed name or has a name ending."""
    spans = []
    words = list(_CAPITALISED.finditer(text))
    run: list[re.Match[str]] = []

    def close() -> None:
        # The run without capitalised words around the name ("Соседка", a sentence's
        # first word) that are not names themselves.
        marks = [_namelike(w.group(), len(run) > 1) for w in run]
        if any(marks):
            first = marks.index(True)
            last = len(marks) - 1 - marks[::-1].index(True)
            spans.append((run[first].start(), run[last].end()))

    for word in words:
        if run and text[run[-1].end() : word.start()].strip() == "":
            run.append(word)
            continue
        if run:
            close()
        run = [word]
    if run:
        close()
    return spans


def _namelike(word: str, in_run: bool) -> bool:
    lower = word.casefold()
    if lower in GIVEN_NAMES:
        return True
    if lower in DUNGAN_SURNAMES and (in_run or len(lower) > 3):
        return True
    return in_run and len(lower) > 4 and bool(SURNAME_ENDINGS.search(lower))


def _known_names(text: str, names: Iterable[str]) -> list[tuple[int, int]]:
    spans = []
    for name in {n.strip() for n in names if len(n.strip()) >= 3}:
        for match in re.finditer(r"(?<!\w)%s(?!\w)" % re.escape(name), text, re.IGNORECASE):
            spans.append((match.start(), match.end()))
    return spans


# --- numbers and patterns --------------------------------------------------------------------

_IIN = re.compile(r"(?<!\d)\d{12}(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_STREET_WORD = (
    r"(?:ул\.|улица|улице|улицы|улицу|пр\.|просп\.|проспект[а-я]*|пер\.|"
    r"переул[а-я]+|мкр\.?|микрорайон[а-я]*|шағын аудан[ыа]?)"
)
_ADDRESS = re.compile(
    r"(?i:%s)\s*[\wЁёӘәҒғҚқҢңӨөҰұҮүҺһІі\"«»-]+(?:\s+[\wЁёӘәҒғҚқҢңӨөҰұҮүҺһІі-]+)?"
    r"(?:,?\s*(?i:д\.|дом|үй)\s*\d+[а-яa-z]?)?(?:,?\s*(?i:кв\.|квартира|пәтер)\s*\d+)?"
    % _STREET_WORD
)
_KAZAKH_STREET = re.compile(
    r"[А-ЯЁӘҒҚҢӨҰҮҺІ][\wӘәҒғҚқҢңӨөҰұҮүҺһІі-]+\s+(?:көшесі|даңғылы|шағын ауданы)"
    r"(?:,?\s*\d+[а-я]?(?:\s*-?\s*(?:үй|пәтер))?)?"
)
_HOUSE = re.compile(r"(?i:\bдом\b|\bд\.|\bкв\.|\bквартира\b|\bпәтер\b)\s*№?\s*\d+[а-я]?")
_PLATE_LETTERS = "A-ZАВЕКМНОРСТУХ"
_PLATE = re.compile(
    r"(?<![\w])(?:\d{3}\s?[%(l)s]{2,3}\s?\d{2}|[%(l)s]\s?\d{3}\s?[%(l)s]{2,3})(?![\w])"
    % {"l": _PLATE_LETTERS}
)
_MONTHS = (
    r"(?:январ[яь]|феврал[яь]|март[а]?|апрел[яь]|ма[йя]|июн[яь]|июл[яь]|август[а]?|"
    r"сентябр[яь]|октябр[яь]|ноябр[яь]|декабр[яь]|қаңтар|ақпан|наурыз|сәуір|мамыр|"
    r"маусым|шілде|тамыз|қыркүйек|қазан|қараша|желтоқсан|january|february|march|"
    r"april|may|june|july|august|september|october|november|december)"
)
_DATE = (
    r"(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)?\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}|"
    r"\d{1,2}\s+%s\s+(?:19|20)\d{2}|(?:19|20)\d{2})" % _MONTHS
)
_BIRTH_BEFORE = re.compile(
    r"(?i:родил(?:ся|ась)|рождения|г\.\s?р\.|д\.\s?р\.|дата рожд\.?|туған|туылған|born|"
    r"date of birth|dob)[^.\n\d]{0,25}?(%s)" % _DATE
)
_BIRTH_AFTER = re.compile(
    r"(%s)\s*(?:г\.?\s*)?(?i:г\.\s?р\.|года рождения|г\. рождения|жылы туған|ж\.т\.)" % _DATE
)


def iin_valid(digits: str) -> bool:
    """The IIN check digit: weights 1..11, or 3..11,1,2 when the first sum gives 10."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    values = [int(c) for c in digits]
    for weights in (range(1, 12), [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]):
        check = sum(w * v for w, v in zip(weights, values[:11], strict=True)) % 11
        if check != 10:
            return check == values[11]
    return False


def _phones(text: str) -> list[tuple[int, int]]:
    return [
        (m.start, m.end)
        for m in phonenumbers.PhoneNumberMatcher(text, "KZ", leniency=phonenumbers.Leniency.VALID)
    ]


def find(text: str, known_names: Iterable[str] = ()) -> list[Finding]:
    """Every finding in ``text``, in order; overlapping ones are merged into the longer
    (an IIN is not also a phone number)."""
    raw: list[tuple[str, int, int]] = []
    raw += [("iin", m.start(), m.end()) for m in _IIN.finditer(text) if iin_valid(m.group())]
    raw += [("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    raw += [("birth_date", m.start(1), m.end(1)) for m in _BIRTH_BEFORE.finditer(text)]
    raw += [("birth_date", m.start(1), m.end(1)) for m in _BIRTH_AFTER.finditer(text)]
    raw += [("phone", a, b) for a, b in _phones(text)]
    raw += [
        ("address", m.start(), m.end())
        for pattern in (_ADDRESS, _KAZAKH_STREET, _HOUSE)
        for m in pattern.finditer(text)
    ]
    raw += [("plate", m.start(), m.end()) for m in _PLATE.finditer(text)]
    raw += [("name", a, b) for a, b in _known_names(text, known_names)]
    raw += [("name", a, b) for a, b in _listed_names(text)]
    if re.search(r"[А-Яа-яЁё]", text):
        raw += [("name", a, b) for a, b in _model_names(text)]
    priority = {kind: n for n, kind in enumerate(KINDS[1:] + KINDS[:1])}
    raw.sort(key=lambda f: (f[1], -(f[2] - f[1]), priority[f[0]]))
    merged: list[tuple[str, int, int]] = []
    for kind, start, end in raw:
        if merged and start < merged[-1][2]:
            last = merged[-1]
            if end - start > last[2] - last[1] and priority[kind] <= priority[last[0]]:
                merged[-1] = (kind, last[1], max(end, last[2]))
            else:
                merged[-1] = (last[0], last[1], max(end, last[2]))
            continue
        merged.append((kind, start, end))
    return [Finding(kind, start, end, text[start:end]) for kind, start, end in merged]


def mask(text: str, findings: Iterable[Finding], language: str) -> str:
    """``text`` with each finding replaced by its placeholder in ``language``."""
    out = text
    for finding in sorted(findings, key=lambda f: f.start, reverse=True):
        placeholder = PLACEHOLDERS[finding.kind].get(language) or PLACEHOLDERS[finding.kind]["en"]
        out = out[: finding.start] + placeholder + out[finding.end :]
    return out


def placeholders() -> set[str]:
    return {p for forms in PLACEHOLDERS.values() for p in forms.values()}
