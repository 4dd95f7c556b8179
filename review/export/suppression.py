"""Small-cell suppression for published counts.

Threat: a published table of counts re-identifies a witness when a reader can tell that
very few testimonies share a combination (one person from a village, in a month, who was
beaten), either from the cell itself or by subtracting the published cells of a row or
column from its published total.

Guarantee: every count from 1 to k-1 is published only as "fewer than k" (primary
suppression), and further cells are withheld (complementary suppression) until no
suppressed count can be worked out exactly from everything published. The check is
exact: a reader who knows every published number, every total, that a "fewer than k"
cell holds 1 to k-1 (0 to k-1 in a row or column whose total is "fewer than k") and that
a withheld cell holds at least k can pin a suppressed count only if no exchange of
counts along a cycle of suppressed cells is possible, which is a reachability question
on the table's row-and-column graph (see :meth:`_Graph.derivable`). Totals are cells like
the others: a small total is suppressed, and with it every cell of its row or column,
zeros included (so they say nothing about how the few are spread); a table whose grand
total is small is published as that total only, and a table that cannot be protected is
withheld whole (its grand total only).

Misuse: protecting two tables that share a margin separately (their margins could then
be suppressed differently); here each quantity is a margin of one table only, and the
one-way tables are copies of those margins. Never pass a table whose grand total is
shared with other tables as a complementary candidate: the grand total is never chosen
to protect others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

SMALL = "small"  # 1..k-1, shown as "fewer than k"
WITHHELD = "withheld"  # at least k, hidden to protect a small cell
UNBOUNDED = 1 << 62

Key = tuple[int, int]


@dataclass
class OneWay:
    """Counts of one variable with their total; ``status[i]`` is None when published."""

    values: list[int]
    total: int
    status: list[str | None]
    total_status: str | None
    withheld: bool = False  # only the total is published


@dataclass
class TwoWay:
    """A cross-tabulation with row and column totals, as published.

    ``status`` maps (row, column) to SMALL or WITHHELD for suppressed entries, where row
    ``len(rows)`` holds the column totals and column ``len(columns)`` the row totals.
    """

    cells: list[list[int]]
    row_totals: list[int]
    column_totals: list[int]
    total: int
    status: dict[Key, str] = field(default_factory=dict)
    withheld: bool = False

    def value(self, i: int, j: int) -> int:
        rows, columns = len(self.cells), len(self.column_totals)
        if i == rows and j == columns:
            return self.total
        if i == rows:
            return self.column_totals[j]
        if j == columns:
            return self.row_totals[i]
        return self.cells[i][j]


def _bounds(value: int, status: str | None, k: int, in_small_line: bool = False) -> tuple[int, int]:
    """What a reader knows about an entry: its value if published, else its class."""
    if status is None:
        return value, value
    if status == SMALL:
        return (0 if in_small_line else 1), k - 1
    return k, UNBOUNDED


# --- one-way tables ----------------------------------------------------------------------


def _one_way_derivable(
    values: list[int], status: list[str | None], total: int, k: int
) -> list[int]:
    """Indices of suppressed counts a reader can pin from the total and the others."""
    hidden = [i for i, s in enumerate(status) if s is not None]
    rest = total - sum(v for v, s in zip(values, status, strict=True) if s is None)
    bounds = [_bounds(values[i], status[i], k) for i in hidden]
    low_sum = sum(lo for lo, _hi in bounds)
    high_sum = sum(hi for _lo, hi in bounds)
    pinned = []
    for index, (lo, hi) in zip(hidden, bounds, strict=True):
        least = max(lo, rest - (high_sum - hi))
        most = min(hi, rest - (low_sum - lo))
        if least >= most:
            pinned.append(index)
    return pinned


def protect_one_way(values: Sequence[int], k: int) -> OneWay:
    """Suppress a one-way table whose total is the sum of its counts."""
    values = list(values)
    total = sum(values)
    if 0 < total < k:
        return OneWay(values, total, [SMALL] * len(values), SMALL, withheld=True)
    status: list[str | None] = [SMALL if 0 < v < k else None for v in values]
    while _one_way_derivable(values, status, total, k):
        candidates = [i for i, v in enumerate(values) if status[i] is None and v >= k]
        if not candidates:
            return OneWay(values, total, [WITHHELD] * len(values), None, withheld=True)
        status[min(candidates, key=lambda i: (values[i], i))] = WITHHELD
    return OneWay(values, total, status, None)


# --- two-way tables ----------------------------------------------------------------------


class _Graph:
    """The table as a bipartite graph: a node per row and per column (the totals are one
    more row and one more column), an edge per entry. With every entry in the margins
    counted negatively, each row and each column sums to zero, so the suppressed entries
    can change only by circulations: an entry is pinned exactly when no circulation
    through it is possible within what the reader knows about the others."""

    def __init__(self, table: TwoWay, k: int) -> None:
        self.table = table
        self.k = k
        self.rows = len(table.cells)
        self.columns = len(table.column_totals)

    def _signed(self, key: Key) -> tuple[int, int, int]:
        """(y, lowest y, highest y) of an entry, y counted negatively in the margins."""
        i, j = key
        value = self.table.value(i, j)
        margin = (i == self.rows) != (j == self.columns)
        inner = i < self.rows and j < self.columns
        status = self.table.status
        small_line = inner and (
            status.get((i, self.columns)) == SMALL or status.get((self.rows, j)) == SMALL
        )
        lo, hi = _bounds(value, status.get(key), self.k, small_line)
        if margin:
            return -value, -hi, -lo
        return value, lo, hi

    def _reachable(self, start: int, goal: int, skip: Key) -> bool:
        """Whether a positive circulation path leads from node ``start`` to ``goal``
        through suppressed entries other than ``skip``. Row i is node i, column j is
        node rows + 1 + j."""
        offset = self.rows + 1
        edges: dict[int, list[int]] = {}
        for key in self.table.status:
            if key == skip:
                continue
            y, low, high = self._signed(key)
            row, column = key[0], offset + key[1]
            if high > y:  # the entry may grow: a path runs from its row to its column
                edges.setdefault(row, []).append(column)
            if y > low:  # the entry may shrink: a path runs back
                edges.setdefault(column, []).append(row)
        seen = {start}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                return True
            for nxt in edges.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return False

    def derivable(self, key: Key) -> bool:
        y, low, high = self._signed(key)
        row, column = key[0], self.rows + 1 + key[1]
        can_grow = high > y and self._reachable(column, row, key)
        can_shrink = y > low and self._reachable(row, column, key)
        return not (can_grow or can_shrink)


def _complement(table: TwoWay, key: Key, k: int) -> Key | None:
    """The cheapest published entry to withhold so that ``key`` may be protected: in its
    row or column, at least k, preferring one that closes a cycle of suppressed entries,
    then inner cells over totals, then the smallest."""
    rows, columns = len(table.cells), len(table.column_totals)
    grand = (rows, columns)
    suppressed_rows = {i for i, _j in table.status}
    suppressed_columns = {j for _i, j in table.status}

    def eligible(candidate: Key) -> bool:
        return candidate != grand and candidate not in table.status and table.value(*candidate) >= k

    def cost(candidate: Key) -> tuple[int, int, int, Key]:
        i, j = candidate
        other_line_has = (j in suppressed_columns) if i == key[0] else (i in suppressed_rows)
        margin = i == rows or j == columns
        return (0 if other_line_has else 1, int(margin), table.value(i, j), candidate)

    line = [(key[0], j) for j in range(columns + 1)] + [(i, key[1]) for i in range(rows + 1)]
    near = [c for c in line if eligible(c)]
    if near:
        return min(near, key=cost)
    anywhere = [(i, j) for i in range(rows + 1) for j in range(columns + 1) if eligible((i, j))]
    return min(anywhere, key=cost) if anywhere else None


def protect_two_way(cells: Sequence[Sequence[int]], k: int) -> TwoWay:
    """Suppress a cross-tabulation and its row, column and grand totals (sums of the
    cells)."""
    matrix = [list(row) for row in cells]
    columns = len(matrix[0]) if matrix else 0
    table = TwoWay(
        matrix,
        [sum(row) for row in matrix],
        [sum(row[j] for row in matrix) for j in range(columns)],
        sum(sum(row) for row in matrix),
    )
    rows = len(matrix)
    entries = [(i, j) for i in range(rows + 1) for j in range(columns + 1)]
    if 0 < table.total < k:
        table.status = dict.fromkeys(entries, SMALL)
        table.withheld = True
        return table
    table.status = {e: SMALL for e in entries if 0 < table.value(*e) < k}
    for i, j in list(table.status):
        if j == columns and i < rows:  # a small row total: its whole row
            table.status.update({(i, c): SMALL for c in range(columns)})
        if i == rows and j < columns:  # a small column total: its whole column
            table.status.update({(r, j): SMALL for r in range(rows)})
    graph = _Graph(table, k)
    while True:
        pinned = [e for e in sorted(table.status) if graph.derivable(e)]
        if not pinned:
            return table
        added = False
        for key in pinned:
            if not graph.derivable(key):
                continue  # protected by a complement chosen for an earlier entry
            choice = _complement(table, key, k)
            if choice is None:
                break
            table.status[choice] = WITHHELD
            added = True
        if not added:
            table.status = {e: WITHHELD for e in entries if e != (rows, columns)}
            table.withheld = True
            return table
