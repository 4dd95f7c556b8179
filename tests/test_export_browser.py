"""The export's report in a real browser (Debian's chromium, JavaScript off): it loads
nothing from anywhere, both charts are drawn (their bars and squares have real size and
the screenshot of each chart has ink in it), hidden counts are hatched, and the print
layout keeps the notice that these are documented cases. Everything here is invented."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from review.export import build

from .export_helpers import add_testimonies, background, load_catalogue
from .review_helpers import make_desk
from .test_browser_intake import browser_page  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def report(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    try:
        load_catalogue(desk.db)
        background(desk.db)
        # A few more: small counts, which the charts must hatch rather than draw.
        add_testimonies(
            desk.db,
            2,
            "otar",
            "saw",
            dt.date(2020, 2, 12),
            "2020-02-07-traffic-stop-masanchi",
            tags=("arson",),
        )
        with desk.db.transaction() as session:
            made = build.build(session, desk.recovery, build.Options(), "operator")
        page = tmp_path / "export" / "report.html"
        page.parent.mkdir()
        page.write_bytes(made.files["report.html"])
        yield page, json.loads(made.files["summary.json"])
    finally:
        desk.close()


def _ink(png: bytes) -> float:
    """The share of pixels that are not (nearly) white."""
    from PIL import Image

    histogram = Image.open(io.BytesIO(png)).convert("L").histogram()
    return sum(histogram[:230]) / sum(histogram)


def test_the_report_draws_its_charts_and_loads_nothing(report, browser_page):  # noqa: F811
    path, summary = report
    page = browser_page
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(path.as_uri())
    assert requested == [path.as_uri()]

    bars = page.locator("#timeline-chart rect.bar")
    counted = [
        i
        for i in summary["incidents"]
        if isinstance(i["testimonies"], int) and i["testimonies"] > 0
    ]
    assert bars.count() == len(counted) >= 1
    heights = [bars.nth(n).bounding_box()["height"] for n in range(bars.count())]
    assert all(h > 5 for h in heights)
    # The attack on Masanchi (31 testimonies) is published, and its bar is the tallest
    # shape of the chart: a hidden count is drawn at a fixed, lower height.
    assert [i["slug"] for i in counted] == ["2020-02-07-attack-on-masanchi"]
    hidden = page.locator("#timeline-chart rect.hidden")
    assert all(hidden.nth(n).bounding_box()["height"] < max(heights) for n in range(hidden.count()))

    squares = page.locator("#heatmap-chart rect.cell, #heatmap-chart rect.hidden")
    table = next(t for t in summary["tables"] if t["id"] == "place_by_violation")
    assert squares.count() == len(table["rows"]["categories"]) * len(table["columns"]["categories"])
    box = squares.first.bounding_box()
    assert box["width"] > 20 and box["height"] > 20
    assert page.locator("#heatmap-chart rect.hidden").count() >= 1  # hatched, not scaled
    assert page.locator("#timeline-chart rect.hidden").count() >= 1

    for chart in ("#timeline-chart svg", "#heatmap-chart svg"):
        shot = page.locator(chart).screenshot()
        assert _ink(shot) > 0.01, chart

    page.emulate_media(media="print")
    assert page.locator("#notice").is_visible()
    assert "documented cases" in page.locator("#notice").inner_text()
    assert page.locator("#table-month_by_place").is_visible()
