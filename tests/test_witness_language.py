"""Plain language: the welcome page and the receipt page read at a level a twelve-year-old
understands, in Russian, Kazakh and English; the receipt says plainly what happens if the
code is lost; the statement is optional when a voice recording is attached, and the
form says so.

The text measured is what a witness reads in the page's ``<main>``: each paragraph, list
item, heading and button, split into sentences; the receipt code itself is left out.

- English: Flesch-Kincaid grade at most 6 (a US sixth-grader is 11 to 12 years old).
- Russian: the Flesch-Kincaid grade as adapted to Russian by Oborneva
  (0.5 × words per sentence + 8.4 × syllables per word − 15.59) at most 6; a Russian
  sixth-former is twelve.
- Kazakh has no established readability formula. Its words are long by construction
  (one word carries what English says in two or three), so both lengths are bounded:
  at most 8 words per sentence on average, at most 2.7 syllables per word on average,
  and at most one word in ten of five syllables or more.
- In every language: no sentence longer than 15 words.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from .intake_helpers import receipt_code, submit

LANGUAGES = ("ru", "kk", "en")
WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
VOWELS = {"ru": set("аеёиоуыэюя"), "kk": set("аәеёиоөұүыіэюя")}
BLOCKS = {"p", "li", "h1", "h2", "h3", "button", "a", "legend", "label", "div", "ol", "ul"}


class MainText(HTMLParser):
    """The readable blocks of ``<main>``, without the receipt code."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.skipping = 0
        self.blocks: list[str] = []
        self._current: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main":
            self.inside = True
        elif self.inside and tag in BLOCKS:
            self._flush()
        if self.skipping or "code" in (dict(attrs).get("class") or "").split():
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            self.skipping -= 1
        if tag == "main":
            self._flush()
            self.inside = False
        elif self.inside and tag in BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.inside and not self.skipping:
            self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.blocks.append(text)
        self._current = []


def sentences(html: str) -> list[list[str]]:
    parser = MainText()
    parser.feed(html)
    found = []
    for block in parser.blocks:
        for sentence in SENTENCE_END.split(block):
            words = WORD.findall(sentence)
            if words:
                found.append(words)
    return found


def syllables(word: str, lang: str) -> int:
    word = word.lower()
    if lang == "en":
        count = len(re.findall(r"[aeiouy]+", word))
        if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
            count -= 1  # a silent final e
        return max(count, 1)
    return max(sum(char in VOWELS[lang] for char in word), 1)


def measure(html: str, lang: str) -> dict[str, float]:
    found = sentences(html)
    words = [w for sentence in found for w in sentence]
    per_sentence = len(words) / len(found)
    per_word = sum(syllables(w, lang) for w in words) / len(words)
    figures = {
        "sentences": len(found),
        "words per sentence": per_sentence,
        "syllables per word": per_word,
        "longest sentence": max(len(s) for s in found),
        "share of 5+ syllable words": sum(syllables(w, lang) >= 5 for w in words) / len(words),
    }
    if lang == "en":
        figures["grade"] = 0.39 * per_sentence + 11.8 * per_word - 15.59
    if lang == "ru":
        figures["grade"] = 0.5 * per_sentence + 8.4 * per_word - 15.59
    return figures


def readable_for_twelve(figures: dict[str, float], lang: str) -> list[str]:
    """What makes a text too hard for a twelve-year-old (empty if nothing)."""
    problems = []
    if figures["longest sentence"] > 15:
        problems.append("a sentence of %d words" % figures["longest sentence"])
    if lang in ("en", "ru") and figures["grade"] > 6:
        problems.append("grade %.1f" % figures["grade"])
    if lang == "kk":
        if figures["words per sentence"] > 8:
            problems.append("%.1f words per sentence" % figures["words per sentence"])
        if figures["syllables per word"] > 2.7:
            problems.append("%.2f syllables per word" % figures["syllables per word"])
        if figures["share of 5+ syllable words"] > 0.1:
            problems.append("%.0f%% long words" % (100 * figures["share of 5+ syllable words"]))
    return problems


def _pages(client, lang: str) -> dict[str, str]:
    welcome = client.get("/%s/" % lang)
    receipt = submit(client, lang=lang)
    assert welcome.status_code == 200 and receipt_code(receipt)
    return {"welcome": welcome.data.decode(), "receipt": receipt.data.decode()}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_welcome_and_receipt_read_at_a_twelve_year_olds_level(client, lang) -> None:
    for name, html in _pages(client, lang).items():
        figures = measure(html, lang)
        print(lang, name, {k: round(v, 2) for k, v in figures.items()})
        assert figures["sentences"] >= 10, (lang, name)  # the page was measured, not empty
        assert readable_for_twelve(figures, lang) == [], (lang, name, figures)


def test_the_measure_tells_a_hard_text_from_a_plain_one() -> None:
    hard = (
        "<main><p>Notwithstanding the aforementioned considerations, the organisation "
        "systematically documents allegations concerning extrajudicial interrogations "
        "in accordance with internationally recognised methodological standards.</p>"
        "</main>"
    )
    plain = "<main><p>We read what you send. We keep it safe. Nobody else sees it.</p></main>"
    assert readable_for_twelve(measure(hard, "en"), "en")
    assert readable_for_twelve(measure(plain, "en"), "en") == []
    hard_ru = (
        "<main><p>Правозащитная организация систематически документирует "
        "многочисленные свидетельства относительно незаконных задержаний.</p></main>"
    )
    assert readable_for_twelve(measure(hard_ru, "ru"), "ru")
    hard_kk = (
        "<main><p>Құқық қорғау ұйымдарының өкілдері тәуелсіздігімізді "
        "қамтамасыз етушілердің жауапкершілігін талқылады.</p></main>"
    )
    assert readable_for_twelve(measure(hard_kk, "kk"), "kk")


LOST_CODE = {
    "en": ("Nobody can give it back to you", "send a new testimony"),
    "ru": ("Никто не сможет его вернуть", "Новое свидетельство можно отправить"),
    "kk": ("Оны ешкім қайтарып бере алмайды", "Жаңа айғақты"),
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_receipt_says_what_happens_if_the_code_is_lost(client, lang) -> None:
    html = _pages(client, lang)["receipt"]
    nobody, new_one = LOST_CODE[lang]
    assert nobody in html and new_one in html
    # ... and offers a page to print that works without script.
    code = receipt_code(submit(client, lang=lang))
    printable = client.post("/%s/print" % lang, data={"code": code})
    assert printable.status_code == 200
    assert receipt_code(printable) == code
    assert "<script" not in printable.data.decode()


def test_the_page_for_paper_does_not_say_what_the_code_is_for(client) -> None:
    code = receipt_code(submit(client, lang="en"))
    html = client.post("/en/print", data={"code": code.replace(" ", "")}).data.decode()
    assert receipt_code(client.post("/en/print", data={"code": code})) == code
    paper = html[html.index('<div class="paper">') : html.index('<div class="no-print">')]
    for telling in ("testimony", "human rights", "Korday", "receipt"):
        assert telling not in paper
    assert client.post("/en/print", data={"code": "<b>1234</b>"}).status_code == 400


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_form_says_a_voice_recording_can_replace_writing(client, lang) -> None:
    html = client.get("/%s/testimony/" % lang).data.decode()
    statement_help = re.search(r'<p class="help" id="statement-help">([^<]+)</p>', html)
    assert statement_help, "the statement has no help text"
    words = {"en": "audio recording", "ru": "запись голоса", "kk": "дауыс жазбасын"}[lang]
    assert words in statement_help.group(1)
    assert 'aria-describedby="statement-help"' in html
