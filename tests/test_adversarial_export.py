"""Hostile text in every export format stays data.

An incident's title and description, a place's name, a violation type's label and an
approved excerpt hold markup, script, template syntax, SQL, a bidi override, quotes,
commas and newlines, each beginning a spreadsheet formula (``= + - @``); six invented
testimonies about them make them published. The export built from that:

- summary.csv and excerpts.csv parse back with ``csv`` to rows as long as their header,
  no cell can start a formula, and the hostile text is there, whole, behind the ``'``;
- summary.json parses and holds the text literally;
- report.html holds no element or attribute that came from the data (parsed), and in
  chromium with JavaScript on and its CSP taken out, nothing runs (no dialog, no
  ``window.__pwned``) while the text is visible; a copy with one payload unescaped shows
  the watch would see it;
- the manifest verifies.

Everything here is invented.
"""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from review.export import build, signing

from .adversarial_helpers import (
    EXCERPT,
    FORMULAS,
    HOSTILE,
    HOSTILE_SHOWN,
    INCIDENT,
    hostile_desk,
)
from .test_adversarial_browser import Watch
from .test_browser_intake import STEP_TIMEOUT_MS, open_browser


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    tmp_path = tmp_path_factory.mktemp("hostile-export")
    with pytest.MonkeyPatch.context() as monkeypatch:
        hostile = hostile_desk(tmp_path, monkeypatch)
        try:
            with hostile.desk.db.transaction() as session:
                made = build.build(
                    session, hostile.admin.identity, build.Options(), "reviewer:alma"
                )
        finally:
            hostile.desk.close()
    folder = tmp_path / "export"
    folder.mkdir()
    for name, data in made.files.items():
        (folder / name).write_bytes(data)
    assert made.excerpts == 1
    return folder, made.files


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_csv_cells_start_no_formula_and_parse_back_whole(export):
    _folder, files = export
    summary, excerpts = _rows(files["summary.csv"]), _rows(files["excerpts.csv"])
    for name, rows in (("summary.csv", summary), ("excerpts.csv", excerpts)):
        assert len(rows) >= 2, name
        assert {len(row) for row in rows} == {len(rows[0])}, name
        starting = [cell for row in rows for cell in row if cell.startswith(build.FORMULA_STARTS)]
        assert starting == [], (name, starting)
    cells = {cell for row in summary for cell in row}
    for kind in ("place", "label"):
        assert "'" + FORMULAS[kind] + HOSTILE in cells, kind
    header, excerpt = excerpts
    assert excerpt[header.index("text")] == "'" + EXCERPT  # newlines, quotes and all
    assert excerpt[header.index("incidents")] == INCIDENT


def test_summary_json_holds_the_text_literally(export):
    _folder, files = export
    summary = json.loads(files["summary.json"])
    labels = {
        c["label"]
        for t in summary["tables"]
        for side in ("rows", "columns")
        if side in t
        for c in t[side]["categories"]
    }
    assert FORMULAS["place"] + HOSTILE in labels
    assert FORMULAS["label"] + HOSTILE in labels
    titles = {i["slug"]: i["title"] for i in summary["incidents"]}
    assert titles[INCIDENT] == FORMULAS["title"] + HOSTILE
    assert summary["excerpts"] == 1


class _Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [name for name, _value in attrs if name.startswith("on")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_report_has_no_markup_from_the_data(export):
    _folder, files = export
    report = _Report()
    report.feed(files["report.html"].decode("utf-8"))
    assert "script" not in report.tags and "img" not in report.tags
    assert report.tags.count("svg") == 2  # the two charts, nothing else
    assert report.handlers == []
    text = "".join(report.text)
    for shown in HOSTILE_SHOWN:
        assert shown in text, shown
    assert FORMULAS["title"] + HOSTILE in text and "A second line" in text


def test_the_manifest_verifies(export):
    folder, _files = export
    result = signing.verify(folder)
    assert result.ok, result.problems
    assert result.files == 4  # summary.json, summary.csv, excerpts.csv, report.html


def _without_csp(html: bytes) -> bytes:
    line = next(line for line in html.split(b"\n") if b"Content-Security-Policy" in line)
    return html.replace(line + b"\n", b"")


@pytest.mark.browser
def test_the_report_runs_nothing_in_a_browser_without_its_csp(export, tmp_path):
    _folder, files = export
    inert = tmp_path / "report.html"
    inert.write_bytes(_without_csp(files["report.html"]))
    payload = "<img src=x onerror=\"window.__pwned='img';alert(2)\">"
    assert payload in HOSTILE
    escaped = (
        payload.replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )
    control = tmp_path / "control.html"
    control.write_bytes(inert.read_bytes().replace(escaped.encode(), payload.encode(), 1))
    assert control.read_bytes() != inert.read_bytes()
    with open_browser() as browser:
        context = browser.new_context(java_script_enabled=True)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.new_page()
        watch = Watch(page)
        page.goto(inert.as_uri())
        text = page.locator("body").inner_text()
        ran = watch.ran()
        page.goto(control.as_uri())
        page.wait_for_function("() => window.__pwned === 'img'")
        caught = watch.ran()
        context.close()
    assert ran == []
    assert "<script>window.__pwned='script'" in text and "{{7*7}}" in text
    assert "window.__pwned = 'img'" in caught and "2" in caught
