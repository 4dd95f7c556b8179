"""Small-cell suppression, as a reader of the export would attack it.

For random tables, no published count lies between 1 and k-1, and no suppressed count
can be worked out from what is published: for each suppressed entry an exact linear
program (HiGHS), given every published cell and total, that a "fewer than k" entry holds
1..k-1 and a withheld one at least k, finds a lowest and a highest possible value that
differ. (Tables of counts with their totals have integral vertices, so the integers
between are reachable too.) k is at least 3: with k = 2, "fewer than 2" would say "exactly
1", which is why the export refuses k below 3. All tables here are random numbers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from review.export.suppression import SMALL, WITHHELD, protect_one_way, protect_two_way

highspy = pytest.importorskip("highspy", reason="HiGHS (pip install highspy) solves the LPs")

COUNTS = st.one_of(st.integers(0, 6), st.sampled_from([0, 0, 1, 2, 9, 14, 40]))


def _range(equations, unknowns, bounds, target):
    """Lowest and highest value of ``target`` subject to the equations (lists of
    (coefficients by unknown, constant) meaning sum = constant) and bounds."""
    found = []
    for sense in (1.0, -1.0):
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        index = {u: h.getNumCol() + n for n, u in enumerate(unknowns)}
        for u in unknowns:
            lo, hi = bounds[u]
            h.addVar(lo, hi if hi is not None else highspy.kHighsInf)
        for u in unknowns:
            h.changeColCost(index[u], sense if u == target else 0.0)
        for coefficients, constant in equations:
            cols = [index[u] for u in coefficients]
            h.addRow(constant, constant, len(cols), cols, [coefficients[u] for u in coefficients])
        h.run()
        assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal, "infeasible"
        found.append(sense * h.getInfo().objective_function_value)
    return found[0], found[1]


def _known(status, k, in_small_line=False):
    if status == SMALL:
        return (0 if in_small_line else 1), k - 1
    return k, None


def _two_way_entries(cells):
    rows, columns = len(cells), len(cells[0])
    value = {}
    for i in range(rows):
        for j in range(columns):
            value[i, j] = cells[i][j]
        value[i, columns] = sum(cells[i])
    for j in range(columns):
        value[rows, j] = sum(row[j] for row in cells)
    value[rows, columns] = sum(map(sum, cells))
    return value, rows, columns


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda r: st.integers(1, 4).flatmap(
            lambda c: st.lists(st.lists(COUNTS, min_size=c, max_size=c), min_size=r, max_size=r)
        )
    ),
    st.integers(3, 6),
)
def test_no_small_count_is_published_and_none_suppressed_is_derivable(cells, k):
    table = protect_two_way(cells, k)
    value, rows, columns = _two_way_entries(cells)
    published = {e: v for e, v in value.items() if e not in table.status}
    if table.withheld:
        # Only the grand total is published then, and only if it is not small.
        assert set(published) <= {(rows, columns)}
        assert 0 < value[rows, columns] < k or (rows, columns) in published
        return
    assert all(v == 0 or v >= k for v in published.values()), published
    assert all(
        table.status[e] == (SMALL if v < k else WITHHELD)
        for e, v in value.items()
        if e in table.status
    )
    # A small row or column total hides its zeros too.
    for (i, j), status in table.status.items():
        if status == SMALL and j == columns and i < rows:
            assert all((i, c) in table.status for c in range(columns))
    unknowns = sorted(table.status)
    small = {e for e, s in table.status.items() if s == SMALL}
    bounds = {
        (i, j): _known(
            table.status[i, j],
            k,
            i < rows and j < columns and ((i, columns) in small or (rows, j) in small),
        )
        for i, j in unknowns
    }
    equations = []
    for i in range(rows + 1):
        line = [((i, j), 1.0) for j in range(columns)] + [((i, columns), -1.0)]
        equations.append(_equation(line, published))
    for j in range(columns + 1):
        line = [((i, j), 1.0) for i in range(rows)] + [((rows, j), -1.0)]
        equations.append(_equation(line, published))
    for entry in unknowns:
        low, high = _range([e for e in equations if e[0]], unknowns, bounds, entry)
        assert high - low > 0.5, "entry %s (value %d) is pinned to %g in %s" % (
            entry,
            value[entry],
            low,
            table.status,
        )


def _equation(line, published):
    coefficients, constant = {}, 0.0
    for entry, sign in line:
        if entry in published:
            constant -= sign * published[entry]
        else:
            coefficients[entry] = sign
    return coefficients, constant


@settings(max_examples=300, deadline=None)
@given(st.lists(COUNTS, min_size=1, max_size=7), st.integers(3, 6))
def test_one_way_tables_too(values, k):
    table = protect_one_way(values, k)
    published = [v for v, s in zip(values, table.status) if s is None]
    assert all(v == 0 or v >= k for v in published)
    if table.total_status is None:
        assert not 0 < table.total < k
    if table.withheld:
        assert not published
        return
    unknowns = [i for i, s in enumerate(table.status) if s is not None]
    bounds = {i: _known(table.status[i], k) for i in unknowns}
    equation = ({i: 1.0 for i in unknowns}, float(table.total - sum(published)))
    for i in unknowns:
        low, high = _range([equation], unknowns, bounds, i)
        assert high - low > 0.5, (values, table.status, i)


def test_a_row_with_one_small_cell_gets_a_partner_and_the_totals_stay():
    # One small cell in a 2x2 table: its row, its column and the opposite corner are
    # withheld, so the four hidden cells can trade counts around the square.
    table = protect_two_way([[3, 10], [12, 20]], 5)
    assert table.status == {(0, 0): SMALL, (0, 1): WITHHELD, (1, 0): WITHHELD, (1, 1): WITHHELD}
    assert table.row_totals == [13, 32] and table.total == 45


def test_a_small_total_is_suppressed_with_its_whole_row_zeros_included():
    # Row 0 sums to 4: the total is small, and so is everything in that row, even its
    # zero, which would otherwise tell how the four are spread.
    table = protect_two_way([[3, 1, 0], [9, 8, 7]], 5)
    assert table.status[0, 3] == SMALL
    assert {table.status[0, j] for j in range(3)} == {SMALL}
    assert not table.withheld


def test_a_small_grand_total_is_all_that_is_published():
    table = protect_two_way([[1, 2], [0, 1]], 5)
    assert table.withheld and table.status[2, 2] == SMALL
    assert len(table.status) == 9
