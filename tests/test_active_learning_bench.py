"""bench/active_learning.py at a small scale: 20 identifications, chosen at random or least sure
first, each retrained through the real path; the table the docs quote has every row, and true
labels never make the probe worse nor cost the base held-out set more than the gate allows."""

from __future__ import annotations

import pytest
from conftest import SHARED, run_bench, table_cells

pytestmark = pytest.mark.slow


def percent(cell: str) -> float:
    return float(cell.rstrip("%"))


@pytest.mark.skipif(
    not (SHARED / "data" / "flower_photos").is_dir(), reason="no ../shared/data/flower_photos"
)
def test_identifications_chosen_either_way_are_retrained_and_measured() -> None:
    output = run_bench(
        "active_learning",
        *("--data", str(SHARED / "data"), "--budgets", "20", "--limit", "20"),
        timeout=1200,
    )
    rows = {
        cells[0]: cells
        for line in output.splitlines()
        if line.startswith(("| serving", "| random", "| least sure"))
        for cells in [table_cells(line)]
    }
    assert set(rows) == {"serving", "random (seed 0)", "least sure first"}
    # order | B | probe top-1 | 2 x (sure and right, sure and wrong) | base held-out | promoted
    serving = rows.pop("serving")
    assert serving[1] == "0" and serving[-1] == ""
    for cells in rows.values():
        assert cells[1] == "20" and len(cells) == len(serving)
        assert percent(cells[2]) >= percent(serving[2]) - 1.0  # true labels: no worse
        assert abs(percent(cells[7]) - percent(serving[7])) <= 1.0
        assert cells[8].startswith("no (only")  # 20 labels: too few held-out photos to promote
