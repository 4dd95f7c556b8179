"""Building an export: the files an organisation may publish, in memory, then signed.

| file | what it holds |
|---|---|
| summary.json | every table with suppression marks (schema: summary.schema.json) |
| summary.csv | the same cells, one line each |
| excerpts.csv | approved excerpts under ids fresh to this export |
| report.html | tables, SVG charts and excerpts in one self-contained page |
| report.pdf | the report printed by chromium (optional, command line only) |
| manifest.json, manifest.sig | SHA-256 of every file, signed with the export key |

Never in an export: receipts, database ids, times finer than the chosen granularity (the
day, or the month), EXIF, file hashes, contacts, reviewer names, statements or notes.
Every text value comes from the counts (codes and labels of public vocabularies and
incidents) or from approved excerpts; every export is recorded in the audit log with
its options, counts and manifest hash, never with any text.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.instance import today
from store.models import Incident
from store.vocabulary import REVIEW_LANGUAGES

from . import counts as counting
from . import excerpts, signing
from .suppression import SMALL, OneWay, TwoWay

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "summary.schema.json"
TEMPLATES = HERE.parent / "templates" / "export"
TRANSLATIONS = HERE.parent / "translations"
FORMAT = "testimony-summary/1"
GRANULARITIES = ("day", "month")
LANGUAGES = REVIEW_LANGUAGES  # a summary is written in one of the review face's languages
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Progress = Callable[[str, int, int], None]


def N_(text: str) -> str:  # noqa: N802 - the marker babel extracts
    return text


NOTICE = N_(
    "These are documented cases, not a representative sample: they count what "
    "witnesses chose to tell this organisation, not how often anything happened."
)
TITLES = {
    "month_by_place": N_("Testimonies by month received and place"),
    "place_by_violation": N_("Violation types reported, by place"),
    "incident_by_role": N_("Testimonies about documented incidents, by the witness's role"),
    "by_month": N_("Testimonies by month received"),
    "by_place": N_("Testimonies by place"),
    "by_violation": N_("Testimonies by violation type"),
    "by_incident": N_("Testimonies by documented incident"),
    "by_relation": N_("Testimonies by the witness's relation to events"),
}
TABLE_NOTES = {
    "place_by_violation": N_(
        "A testimony can report several violation types: a place's "
        "total counts reports, not testimonies."
    ),
    "incident_by_role": N_(
        "A testimony can speak of several incidents: a role's total counts links, not testimonies."
    ),
}
VARIABLES = {
    "month": N_("Month"),
    "place": N_("Place"),
    "violation": N_("Violation type"),
    "incident": N_("Incident"),
    "role": N_("Role"),
    "relation": N_("Relation to events"),
}
CATEGORY_LABELS = {
    "eyewitness": N_("Eyewitness"),
    "victim": N_("Victim"),
    "relative": N_("Relative of a victim"),
    "hearsay": N_("Hearsay"),
    "saw": N_("Saw it"),
    "happened_to_me": N_("Happened to them"),
    "happened_to_family": N_("Happened to their family"),
    "heard": N_("Heard from others"),
}


class ExportError(ValueError):
    """The options cannot make an export; the message says why."""


@dataclass
class Options:
    k: int = 5
    incidents: list[str] = field(default_factory=list)
    granularity: str = "day"
    language: str = "en"


@dataclass
class Export:
    files: dict[str, bytes]
    manifest_sha256: str
    testimonies: int
    excerpts: int
    generated_on: str


def _translations(language: str) -> NullTranslations:
    if language == "en":
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS), [language])


def coarse(day: str | dt.date, granularity: str) -> str:
    """A date as the export may show it: the day, or only the month."""
    text = day.isoformat() if isinstance(day, dt.date) else str(day)
    return text[:7] if granularity == "month" else text[:10]


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# --- the tables as published ----------------------------------------------------------


def _cell(value: int, status: str | None, k: int) -> Any:
    if status is None:
        return value
    return {"fewer_than": k} if status == SMALL else {"withheld": True}


def _categories(
    items: list[counting.Category], language: str, tr: NullTranslations
) -> list[dict[str, str]]:
    out = []
    for item in items:
        label = item.labels.get(language) or item.labels.get("en") or item.code
        if item.code in CATEGORY_LABELS and not item.labels:
            label = tr.gettext(CATEGORY_LABELS[item.code])
        out.append({"code": item.code, "label": label})
    return out


def _two_way(
    table: counting.CrossTable,
    variables: tuple[str, str],
    k: int,
    language: str,
    tr: NullTranslations,
) -> dict[str, Any]:
    p: TwoWay = table.protected
    rows, columns = len(p.cells), len(p.column_totals)

    def cell(i: int, j: int) -> Any:
        if p.withheld and (i, j) != (rows, columns):
            return (
                {"withheld": True} if p.status.get((rows, columns)) is None else {"fewer_than": k}
            )
        return _cell(p.value(i, j), p.status.get((i, j)), k)

    return {
        "id": table.name,
        "title": tr.gettext(TITLES[table.name]),
        "note": tr.gettext(TABLE_NOTES[table.name]) if table.name in TABLE_NOTES else "",
        "notice": tr.gettext(NOTICE),
        "withheld": p.withheld,
        "rows": {
            "variable": variables[0],
            "label": tr.gettext(VARIABLES[variables[0]]),
            "categories": _categories(table.rows, language, tr),
        },
        "columns": {
            "variable": variables[1],
            "label": tr.gettext(VARIABLES[variables[1]]),
            "categories": _categories(table.columns, language, tr),
        },
        "cells": [[cell(i, j) for j in range(columns)] for i in range(rows)],
        "row_totals": [cell(i, columns) for i in range(rows)],
        "column_totals": [cell(rows, j) for j in range(columns)],
        "total": cell(rows, columns),
    }


def _one_way(
    name: str,
    variable: str,
    categories: list[dict[str, str]],
    cells: list[Any],
    total: Any,
    withheld: bool,
    tr: NullTranslations,
) -> dict[str, Any]:
    return {
        "id": name,
        "title": tr.gettext(TITLES[name]),
        "note": "",
        "notice": tr.gettext(NOTICE),
        "withheld": withheld,
        "rows": {
            "variable": variable,
            "label": tr.gettext(VARIABLES[variable]),
            "categories": categories,
        },
        "cells": cells,
        "total": total,
    }


def tables(result: counting.Counts, language: str, tr: NullTranslations) -> list[dict[str, Any]]:
    """Every table as summary.json has it: cross-tabulations, then their margins as
    one-way tables (the same cells, so suppressed alike), then the others."""
    k = result.k
    variables = {
        "month_by_place": ("month", "place"),
        "place_by_violation": ("place", "violation"),
        "incident_by_role": ("incident", "role"),
    }
    cross = {t.name: _two_way(t, variables[t.name], k, language, tr) for t in result.cross}
    out = list(cross.values())
    margins = (
        ("by_month", "month_by_place", "rows"),
        ("by_place", "month_by_place", "columns"),
        ("by_violation", "place_by_violation", "columns"),
        ("by_incident", "incident_by_role", "rows"),
    )
    for name, source, side in margins:
        table = cross[source]
        totals = table["row_totals"] if side == "rows" else table["column_totals"]
        out.append(
            _one_way(
                name,
                table[side]["variable"],
                table[side]["categories"],
                totals,
                table["total"],
                table["withheld"],
                tr,
            )
        )
    for simple in result.simple:
        p: OneWay = simple.protected
        cells = [
            ({"fewer_than": k} if p.total_status else {"withheld": True})
            if p.withheld
            else _cell(v, s, k)
            for v, s in zip(p.values, p.status, strict=True)
        ]
        out.append(
            _one_way(
                simple.name,
                "relation",
                _categories(simple.categories, language, tr),
                cells,
                _cell(p.total, p.total_status, k),
                p.withheld,
                tr,
            )
        )
    return out


def shown(cell: Any, k: int, tr: NullTranslations) -> str:
    """A cell as a reader sees it in the CSV and the report."""
    if isinstance(cell, int):
        return str(cell)
    if "fewer_than" in cell:
        return tr.gettext("fewer than %(k)d") % {"k": k}
    return tr.gettext("withheld")


# --- files ------------------------------------------------------------------------------


def _csv(rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def summary_csv(all_tables: list[dict[str, Any]], k: int, tr: NullTranslations) -> bytes:
    rows: list[list[object]] = [
        ["table", "row_code", "row", "column_code", "column", "count", "suppressed"]
    ]
    total_label = tr.gettext("Total")

    def line(table: str, row: dict[str, str], column: dict[str, str], cell: Any) -> None:
        count = cell if isinstance(cell, int) else ""
        mark = "" if isinstance(cell, int) else shown(cell, k, tr)
        rows.append(
            [table, row["code"], row["label"], column["code"], column["label"], count, mark]
        )

    total = {"code": "total", "label": total_label}
    none = {"code": "", "label": ""}
    for table in all_tables:
        categories = table["rows"]["categories"]
        if "columns" in table:
            columns = table["columns"]["categories"]
            for row, cells, row_total in zip(
                categories, table["cells"], table["row_totals"], strict=True
            ):
                for column, cell in zip(columns, cells, strict=True):
                    line(table["id"], row, column, cell)
                line(table["id"], row, total, row_total)
            for column, cell in zip(columns, table["column_totals"], strict=True):
                line(table["id"], total, column, cell)
            line(table["id"], total, total, table["total"])
        else:
            for row, cell in zip(categories, table["cells"], strict=True):
                line(table["id"], row, none, cell)
            line(table["id"], total, none, table["total"])
    return _csv(rows)


def excerpts_csv(items: list[dict[str, Any]]) -> bytes:
    rows: list[list[object]] = [["excerpt", "language", "incidents", "text"]]
    rows += [[e["id"], e["language"], " ".join(e["incidents"]), e["text"]] for e in items]
    return _csv(rows)


def _incident_rows(
    session: Session,
    all_tables: list[dict[str, Any]],
    slugs: list[str],
    granularity: str,
    language: str,
) -> list[dict[str, Any]]:
    """Incidents for the timeline: those chosen (all when none) with their testimony
    counts as the by-incident table publishes them (0 when none is linked)."""
    by_incident = next(t for t in all_tables if t["id"] == "by_incident")
    counted = {
        c["code"]: cell
        for c, cell in zip(by_incident["rows"]["categories"], by_incident["cells"], strict=True)
    }
    query = select(Incident.slug, Incident.title, Incident.start).order_by(
        Incident.start, Incident.slug
    )
    if slugs:
        query = query.where(Incident.slug.in_(slugs))
    return [
        {
            "slug": slug,
            "title": title.get(language) or title.get("en") or slug,
            "start": coarse(start, granularity),
            "testimonies": counted.get(slug, 0),
        }
        for slug, title, start in session.execute(query)
    ]


def _environment(tr: NullTranslations) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension, unknown to the type hints
    return env


def build(
    session: Session,
    identity: crypto.Identity,
    options: Options,
    actor: str,
    progress: Progress | None = None,
    pdf: Callable[[bytes], bytes | None] | None = None,
) -> Export:
    """Count, collect excerpts, write every file in memory, sign, and audit."""
    report = progress or (lambda stage, done, total: None)
    _check(session, options)
    tr = _translations(options.language)
    generated_on = coarse(today(), options.granularity)

    report("counting", 0, 1)
    result = counting.count(session, options.k, options.incidents)
    all_tables = tables(result, options.language, tr)
    report("counting", 1, 1)
    items = _excerpts(session, identity, options, report)

    summary = {
        "format": FORMAT,
        "generated_on": generated_on,
        "granularity": options.granularity,
        "k": options.k,
        "language": options.language,
        "notice": tr.gettext(NOTICE),
        "scope": {
            "incidents": sorted(options.incidents),
            "excluded_statuses": list(counting.DISCOUNTED_STATUSES),
        },
        "testimonies": _cell(
            result.testimonies, SMALL if 0 < result.testimonies < options.k else None, options.k
        ),
        "tables": all_tables,
        "incidents": _incident_rows(
            session, all_tables, options.incidents, options.granularity, options.language
        ),
        "excerpts": len(items),
    }
    jsonschema.validate(summary, json.loads(SCHEMA.read_text()))
    report("writing", 0, 4)
    files: dict[str, bytes] = {}
    files["summary.json"] = (json.dumps(summary, ensure_ascii=False, indent=1) + "\n").encode()
    files["summary.csv"] = summary_csv(all_tables, options.k, tr)
    files["excerpts.csv"] = excerpts_csv(items)
    key = signing.signing_key(session, identity, actor)
    public = signing.public_key_text(key.public_key())
    files["report.html"] = _report_html(summary, items, options, tr, signing.fingerprint(public))
    report("writing", 3, 4)
    if pdf is not None:
        printed = pdf(files["report.html"])
        if printed:
            files["report.pdf"] = printed
    manifest, signature, digest = signing.manifest(files, key, generated_on)
    files[signing.MANIFEST], files[signing.SIGNATURE] = manifest, signature
    report("writing", 4, 4)
    audit.append(
        session,
        actor,
        "export.create",
        "export",
        {
            "k": options.k,
            "granularity": options.granularity,
            "incidents": sorted(options.incidents),
            "language": options.language,
            "testimonies": result.testimonies,
            "tables": len(all_tables),
            "excerpts": len(items),
            "files": sorted(files),
            "manifest_sha256": digest,
        },
    )
    return Export(files, digest, result.testimonies, len(items), generated_on)


def _check(session: Session, options: Options) -> None:
    if not 3 <= options.k <= 1000:
        raise ExportError(
            'k must be between 3 and 1000 (with k = 2, "fewer than 2" would say "exactly 1")'
        )
    if options.granularity not in GRANULARITIES:
        raise ExportError("granularity must be day or month")
    if options.language not in LANGUAGES:
        raise ExportError("language must be one of %s" % ", ".join(LANGUAGES))
    known = (
        set(session.scalars(select(Incident.slug).where(Incident.slug.in_(options.incidents))))
        if options.incidents
        else set()
    )
    unknown = sorted(set(options.incidents) - known)
    if unknown:
        raise ExportError("no incident with the short name %s" % ", ".join(unknown))


def _excerpts(
    session: Session, identity: crypto.Identity, options: Options, report: Progress
) -> list[dict[str, Any]]:
    """The approved excerpts in scope, shuffled and numbered E1, E2, …"""
    scope = counting.scope_conditions(session, options.incidents)
    wanted = (
        session.scalar(
            select(func.count())
            .select_from(excerpts.Excerpt)
            .where(excerpts.Excerpt.status == excerpts.APPROVED)
        )
        or 0
    )
    items: list[dict[str, Any]] = []
    for n, found in enumerate(excerpts.publishable(session, identity, scope, options.incidents)):
        items.append({"language": found.language, "incidents": found.incidents, "text": found.text})
        if n % 50 == 0:
            report("excerpts", n, wanted)
    secrets.SystemRandom().shuffle(items)  # no trace of the order they were made in
    for n, item in enumerate(items, 1):
        item["id"] = "E%d" % n
    report("excerpts", len(items), len(items))
    return items


def _report_html(
    summary: dict[str, Any],
    items: list[dict[str, Any]],
    options: Options,
    tr: NullTranslations,
    fingerprint: str,
) -> bytes:
    from . import charts

    html = (
        _environment(tr)
        .get_template("report.html")
        .render(
            summary=summary,
            excerpts=items,
            k=options.k,
            lang=options.language,
            show=lambda cell: shown(cell, options.k, tr),
            timeline=charts.timeline(summary["incidents"], options.k),
            heatmap=charts.heatmap(
                next(t for t in summary["tables"] if t["id"] == "place_by_violation"), options.k
            ),
            fingerprint=fingerprint,
        )
    )
    return html.encode("utf-8")
