"""Full-text search over sealed statements: the same hits, in the same order, whether the
statements are unsealed in this process or on the pool of worker processes; statements
not shared with the reviewer are skipped, and the search stays case-insensitive."""

from __future__ import annotations

import pytest

from review import search as full_text

from .intake_helpers import receipt_code, submit
from .review_helpers import make_desk


@pytest.fixture
def desk(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    intake = desk.intake_app.test_client()
    # Sealed before the reviewer exists: not shared with them.
    assert receipt_code(submit(intake, statement="Invented early account of the МЕЧЕТЬ fire"))
    desk.add_reviewer("dana")
    for n in range(23):
        word = "мечеть" if n % 5 == 0 else "house"
        assert receipt_code(
            submit(
                intake,
                statement="Invented account %d near the %s." % (n, word.upper() if n % 2 else word),
            )
        )
    yield desk
    desk.close()


def _search(desk, query, **settings):
    with desk.db.sessions() as session:
        return full_text.search(session, desk.people["dana"].identity, query, **settings)


def test_pool_and_in_process_search_agree(desk, monkeypatch):
    monkeypatch.setattr(full_text, "PARALLEL_FROM", 10**9)
    serial_hits, serial_searched = _search(desk, "Мечеть")
    monkeypatch.setattr(full_text, "PARALLEL_FROM", 5)
    monkeypatch.setattr(full_text, "BATCH", 4)
    pooled_hits, pooled_searched = _search(desk, "Мечеть")
    assert [(h.testimony_id, h.snippet) for h in pooled_hits] == [
        (h.testimony_id, h.snippet) for h in serial_hits
    ]
    assert serial_searched == pooled_searched == 23  # the unshared statement is skipped
    assert [h.testimony_id for h in serial_hits] == [22, 17, 12, 7, 2]  # newest first
    assert all("мечеть" in h.snippet.casefold() for h in serial_hits)


def test_the_limit_stops_the_search_early(desk, monkeypatch):
    monkeypatch.setattr(full_text, "PARALLEL_FROM", 5)
    monkeypatch.setattr(full_text, "BATCH", 4)
    hits, _searched = _search(desk, "invented", limit=3)
    assert [h.testimony_id for h in hits] == [24, 23, 22]
