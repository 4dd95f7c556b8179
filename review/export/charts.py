"""The report's charts as plain SVG geometry (no script, no external resource): the
template draws the shapes computed here. Suppressed counts are drawn as hatched marks
of a fixed size, never scaled to their hidden value."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Chart:
    width: int
    height: int
    shapes: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)


def _day(start: str) -> dt.date:
    text = start[:10]
    if len(text) == 7:
        text += "-01"
    return dt.date.fromisoformat(text)


def timeline(incidents: list[dict[str, Any]], k: int) -> Chart:
    """Incidents on a time axis, numbered, each a bar as tall as its testimony count."""
    chart = Chart(900, 300)
    if not incidents:
        return chart
    left, right, top, bottom = 50, 880, 20, 240
    days = [_day(i["start"]) for i in incidents]
    first, last = min(days), max(days)
    span = max((last - first).days, 1)
    counts = [i["testimonies"] for i in incidents]
    highest = max([c for c in counts if isinstance(c, int)] + [k])
    slots: dict[dt.date, int] = {}
    last_label = -100.0
    for number, (incident, day) in enumerate(zip(incidents, days, strict=True), 1):
        slot = slots.get(day, 0)
        slots[day] = slot + 1
        x = left + (right - left) * (day - first).days / span + slot * 9
        x = min(x, right)
        cell = incident["testimonies"]
        if cell == 0:
            chart.shapes.append(
                {
                    "kind": "zero",
                    "x": x - 1,
                    "y": bottom - 3,
                    "w": 3,
                    "h": 3,
                    "title": "%d. %s: 0" % (number, incident["title"]),
                }
            )
        elif isinstance(cell, int):
            height = (bottom - top) * cell / highest
            chart.shapes.append(
                {
                    "kind": "bar",
                    "x": x - 3,
                    "y": bottom - height,
                    "w": 7,
                    "h": height,
                    "title": "%d. %s: %d" % (number, incident["title"], cell),
                }
            )
        else:
            height = (bottom - top) * (k / 2) / highest
            chart.shapes.append(
                {
                    "kind": "hidden",
                    "x": x - 3,
                    "y": bottom - height,
                    "w": 7,
                    "h": height,
                    "title": "%d. %s" % (number, incident["title"]),
                }
            )
        if x - last_label >= 16:  # crowded days: the legend and the bars' titles say it all
            chart.labels.append({"x": x, "y": bottom + 14, "text": str(number), "anchor": "middle"})
            last_label = x
    chart.shapes.append(
        {"kind": "axis", "x": left, "y": bottom, "w": right - left + 10, "h": 1, "title": ""}
    )
    chart.labels.append(
        {"x": left, "y": bottom + 34, "text": first.isoformat()[:7], "anchor": "start"}
    )
    month = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    while month <= last:
        if (month - first).days * (right - left) / span > 60:
            x = left + (right - left) * (month - first).days / span
            chart.labels.append(
                {"x": x, "y": bottom + 34, "text": month.isoformat()[:7], "anchor": "middle"}
            )
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    chart.labels.append({"x": left - 8, "y": top + 4, "text": str(highest), "anchor": "end"})
    chart.labels.append({"x": left - 8, "y": bottom, "text": "0", "anchor": "end"})
    return chart


def heatmap(table: dict[str, Any], k: int) -> Chart:
    """Violation types (columns) by place (rows): shaded squares with their counts."""
    rows = table["rows"]["categories"]
    columns = table["columns"]["categories"]
    size, left, top = 34, 190, 150
    chart = Chart(left + size * max(len(columns), 1) + 20, top + size * max(len(rows), 1) + 10)
    values = [c for row in table["cells"] for c in row if isinstance(c, int)]
    highest = max(values + [1])
    for j, column in enumerate(columns):
        x = left + j * size + size / 2
        chart.labels.append(
            {"x": x, "y": top - 8, "text": column["label"][:28], "anchor": "start", "rotate": -50}
        )
    for i, row in enumerate(rows):
        y = top + i * size
        chart.labels.append(
            {"x": left - 8, "y": y + size / 2 + 4, "text": row["label"][:28], "anchor": "end"}
        )
        for j, cell in enumerate(table["cells"][i]):
            x = left + j * size
            shape = {
                "x": x + 1,
                "y": y + 1,
                "w": size - 2,
                "h": size - 2,
                "title": "%s / %s" % (row["label"], columns[j]["label"]),
            }
            if isinstance(cell, int):
                shape.update(
                    kind="cell",
                    opacity=0.12 + 0.88 * cell / highest if cell else 0,
                    text=str(cell),
                    dark=cell > highest / 2,
                )
            else:
                shape.update(kind="hidden", text="<%d" % k if "fewer_than" in cell else "·")
            chart.shapes.append(shape)
    return chart
