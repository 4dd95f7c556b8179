"""The counts an export publishes, counted by the database (GROUP BY), never by loading
testimonies into memory, then protected by :mod:`.suppression`.

Which testimonies count: every testimony except those marked withdrawn or not credible,
and, when the export is limited to incidents, only those linked to one of them. All
variables counted are stored in the clear for this purpose (place, the witness's
relation to events, the month of receipt, links with the witness's role, violation
tags); nothing is unsealed here.

Each quantity is the margin of exactly one cross-tabulation, so it is suppressed once
and the one-way tables are copies of those margins:

- month_by_place: testimonies by month of receipt and place; its totals are the
  testimonies by month and by place.
- place_by_violation: testimonies by place and violation type tagged; column totals are
  the testimonies by violation type, row totals the tags recorded at each place.
- incident_by_role: links by incident and the witness's role in it; row totals are the
  testimonies by incident, column totals the links by role.
- by_relation: testimonies by the witness's relation to events (one-way).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from store.incidents import DISCOUNTED_STATUSES, ROLES
from store.models import (
    Incident,
    Place,
    Testimony,
    TestimonyIncident,
    TestimonyViolation,
    ViolationType,
)
from store.vocabulary import PLACES, RELATIONS

from .suppression import OneWay, TwoWay, protect_one_way, protect_two_way

Labels = dict[str, str]


@dataclass
class Category:
    code: str
    labels: Labels


@dataclass
class CrossTable:
    name: str
    rows: list[Category]
    columns: list[Category]
    protected: TwoWay


@dataclass
class SimpleTable:
    name: str
    categories: list[Category]
    protected: OneWay


@dataclass
class Counts:
    k: int
    testimonies: int
    cross: list[CrossTable] = field(default_factory=list)
    simple: list[SimpleTable] = field(default_factory=list)


def _month(session: Session, column: Any) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


def scope_conditions(session: Session, incidents: Iterable[str] = ()) -> list[Any]:
    """Which testimonies an export counts (see the module docstring)."""
    conditions: list[Any] = [Testimony.status.not_in(DISCOUNTED_STATUSES)]
    slugs = list(incidents)
    if slugs:
        conditions.append(
            Testimony.id.in_(
                select(TestimonyIncident.testimony_id)
                .join(Incident)
                .where(Incident.slug.in_(slugs))
            )
        )
    return conditions


def _grid(
    pairs: list[tuple[str, str, int]], rows: list[str], columns: list[str]
) -> list[list[int]]:
    index_r = {code: n for n, code in enumerate(rows)}
    index_c = {code: n for n, code in enumerate(columns)}
    grid = [[0] * len(columns) for _ in rows]
    for row, column, count in pairs:
        grid[index_r[row]][index_c[column]] += count
    return grid


def _place_labels(session: Session) -> dict[str, Labels]:
    labels = {code: dict(names) for code, names in PLACES.items()}
    for slug, names in session.execute(select(Place.slug, Place.names)):
        labels[slug] = dict(names)
    return labels


def _categories(codes: Iterable[str], labels: dict[str, Labels]) -> list[Category]:
    return [Category(code, labels.get(code) or {"en": code}) for code in codes]


def count(session: Session, k: int, incidents: Iterable[str] = ()) -> Counts:
    """Count and protect every table of an export."""
    slugs = list(incidents)
    scope = scope_conditions(session, slugs)
    counts = Counts(
        k, session.scalar(select(func.count()).select_from(Testimony).where(*scope)) or 0
    )
    places = _place_labels(session)
    counts.cross.append(_month_by_place(session, scope, places, k))
    counts.cross.append(_place_by_violation(session, scope, places, k))
    link_scope = [*scope, Incident.slug.in_(slugs)] if slugs else scope
    counts.cross.append(_incident_by_role(session, link_scope, k))
    counts.simple.append(_by_relation(session, scope, k))
    return counts


def _triples(session: Session, query: Select[str, str, int]) -> list[tuple[str, str, int]]:
    """The (row, column, count) rows of a two-way count."""
    return [(a, b, n) for a, b, n in session.execute(query).all()]


def _cross(
    table_id: str,
    pairs: list[tuple[str, str, int]],
    rows: tuple[list[str], list[Category]],
    columns: tuple[list[str], list[Category]],
    k: int,
) -> CrossTable:
    """A two-way table of ``pairs`` over ``rows`` and ``columns`` (codes, categories),
    protected for ``k``."""
    grid = protect_two_way(_grid(pairs, rows[0], columns[0]), k)
    return CrossTable(table_id, rows[1], columns[1], grid)


def _month_by_place(
    session: Session, scope: list[Any], places: dict[str, Labels], k: int
) -> CrossTable:
    month = _month(session, Testimony.received_on).label("month")
    pairs = _triples(
        session,
        select(month, Testimony.place, func.count()).where(*scope).group_by(month, Testimony.place),
    )
    months = sorted({m for m, _p, _n in pairs})
    codes = _ordered_places({p for _m, p, _n in pairs})
    return _cross(
        "month_by_place",
        pairs,
        (months, [Category(m, {"en": m}) for m in months]),
        (codes, _categories(codes, places)),
        k,
    )


def _place_by_violation(
    session: Session, scope: list[Any], places: dict[str, Labels], k: int
) -> CrossTable:
    labels: dict[str, Labels] = dict(
        session.execute(select(ViolationType.slug, ViolationType.labels)).all()
    )
    pairs = _triples(
        session,
        select(Testimony.place, ViolationType.slug, func.count())
        .join(TestimonyViolation, TestimonyViolation.testimony_id == Testimony.id)
        .join(ViolationType, ViolationType.id == TestimonyViolation.violation_type_id)
        .where(*scope)
        .group_by(Testimony.place, ViolationType.slug),
    )
    tagged = _ordered_places({p for p, _v, _n in pairs})
    types = sorted({v for _p, v, _n in pairs})
    return _cross(
        "place_by_violation",
        pairs,
        (tagged, _categories(tagged, places)),
        (types, _categories(types, labels)),
        k,
    )


def _incident_by_role(session: Session, scope: list[Any], k: int) -> CrossTable:
    pairs = _triples(
        session,
        select(Incident.slug, TestimonyIncident.role, func.count())
        .join(TestimonyIncident, TestimonyIncident.incident_id == Incident.id)
        .join(Testimony, Testimony.id == TestimonyIncident.testimony_id)
        .where(*scope)
        .group_by(Incident.slug, TestimonyIncident.role),
    )
    info = {
        slug: (start, title)
        for slug, start, title in session.execute(
            select(Incident.slug, Incident.start, Incident.title)
        )
    }
    linked = sorted({i for i, _r, _n in pairs}, key=lambda s: (info[s][0], s))
    roles = [r for r in ROLES if any(role == r for _i, role, _n in pairs)]
    return _cross(
        "incident_by_role",
        pairs,
        (linked, _categories(linked, {s: info[s][1] for s in linked})),
        (roles, _categories(roles, {})),
        k,
    )


def _by_relation(session: Session, scope: list[Any], k: int) -> SimpleTable:
    relations = dict(
        session.execute(
            select(Testimony.relation, func.count()).where(*scope).group_by(Testimony.relation)
        ).all()
    )
    present = [r for r in RELATIONS if relations.get(r)] + sorted(set(relations) - set(RELATIONS))
    return SimpleTable(
        "by_relation", _categories(present, {}), protect_one_way([relations[r] for r in present], k)
    )


def _ordered_places(codes: set[str]) -> list[str]:
    """The witness form's order (the gazetteer's), then any other place by code."""
    known = [code for code in PLACES if code in codes]
    return known + sorted(codes - set(known))
