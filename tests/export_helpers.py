"""Builders for the export tests: invented testimonies inserted straight into the
database (their sealed details are one shared invented blob: counts never open them),
and a walk over every number an export publishes."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

import crypto
from store.blobs import seal_document
from store.incidents import load_file
from store.models import (
    Incident,
    Testimony,
    TestimonyIncident,
    TestimonyViolation,
    ViolationType,
)
from store.receipts import new_witness

from .conftest import ROOT

_serial = itertools.count(1)


def load_catalogue(db) -> None:
    with db.transaction() as session:
        for name in ("violation-types.json", "korday-2020.json"):
            load_file(session, ROOT / "store" / "data" / name, "operator")


def add_testimonies(
    db,
    count: int,
    place: str,
    relation: str,
    day: dt.date,
    incident: str | None = None,
    role: str = "eyewitness",
    tags: tuple[str, ...] = (),
    consent: str = "counts",
    status: str = "in_review",
) -> list[int]:
    """``count`` invented testimonies sharing every counted variable."""
    ids = []
    with db.transaction() as session:
        details = seal_document(session, {"text": "invented details"})
        linked = (
            session.scalar(select(Incident.id).where(Incident.slug == incident))
            if incident
            else None
        )
        tag_ids = (
            list(session.scalars(select(ViolationType.id).where(ViolationType.slug.in_(tags))))
            if tags
            else []
        )
        for _ in range(count):
            witness = new_witness(
                session,
                "invented-%d" % next(_serial),
                str(crypto.X25519Identity.generate().recipient),
                day,
            )
            item = Testimony(
                witness_id=witness.id,
                received_on=day,
                updated_on=day,
                status=status,
                language="ru",
                place=place,
                relation=relation,
                consent=consent,
                details_blob_id=details.id,
            )
            session.add(item)
            session.flush()
            ids.append(item.id)
            if linked:
                session.add(
                    TestimonyIncident(
                        testimony_id=item.id,
                        incident_id=linked,
                        role=role,
                        confidence="high",
                        linked_on=day,
                    )
                )
            for tag in tag_ids:
                session.add(TestimonyViolation(testimony_id=item.id, violation_type_id=tag))
    return ids


def background(db) -> None:
    """A plausible body of invented testimony about the catalogue's main incidents."""
    feb, apr = dt.date(2020, 2, 10), dt.date(2020, 4, 20)
    attack = "2020-02-07-attack-on-masanchi"
    arrests = "2020-04-arrest-and-beating-to-extract-confession"
    add_testimonies(
        db, 14, "masanchi", "saw", feb, attack, "eyewitness", ("arson", "physical-assault")
    )
    add_testimonies(db, 9, "masanchi", "happened_to_me", feb, attack, "victim", ("arson",))
    add_testimonies(db, 8, "sortobe", "saw", feb, attack, "eyewitness", ("physical-assault",))
    add_testimonies(
        db, 7, "sortobe", "heard", apr, arrests, "hearsay", ("arbitrary-arrest-and-detention",)
    )
    add_testimonies(
        db,
        6,
        "bular-batyr",
        "happened_to_family",
        apr,
        arrests,
        "relative",
        ("arbitrary-arrest-and-detention", "torture-and-ill-treatment"),
    )
    add_testimonies(db, 3, "masanchi", "saw", feb, status="withdrawn")


def numbers(summary: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every published cell of summary.json with where it is."""
    yield "testimonies", summary["testimonies"]
    for table in summary["tables"]:
        for n, cell in enumerate(table["cells"]):
            if isinstance(cell, list):
                for m, inner in enumerate(cell):
                    yield "%s[%d][%d]" % (table["id"], n, m), inner
            else:
                yield "%s[%d]" % (table["id"], n), cell
        for key in ("row_totals", "column_totals"):
            for n, cell in enumerate(table.get(key, [])):
                yield "%s.%s[%d]" % (table["id"], key, n), cell
        yield "%s.total" % table["id"], table["total"]
    for incident in summary["incidents"]:
        yield "incident %s" % incident["slug"], incident["testimonies"]
