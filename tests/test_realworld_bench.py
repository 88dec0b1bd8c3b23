"""bench/realworld.py at a small scale: a few measuring-half photos per folder of each real-world
set, one table each (the docs' tables come from the same script on every photo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED, run_bench, table_cells

pytestmark = pytest.mark.slow
PER_FOLDER = 6


def table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = table_cells(line)
        if line.startswith("| ") and len(cells) == 10 and cells[1].isdigit():
            rows[cells[0]] = cells[1:]
    return rows


def percent(cell: str) -> float:
    return float(cell.rstrip("%")) / 100


def test_the_benchmark_prints_a_table_per_real_world_set(tmp_path: Path) -> None:
    output = run_bench(
        "realworld",
        *("--data", str(SHARED / "data"), "--limit", str(PER_FOLDER), "--no-leave-out"),
        *("--cache-dir", str(tmp_path / "features")),  # the backbone really runs on these photos
        cwd=tmp_path,
    )
    rows = table_rows(output)
    garden = ["black-eyed_susan", "rose", "sunflower", "water_lily", "**all**"]
    others = ["daisy", "tulips", "nonflower", "**known species**"]
    for name in garden + others:
        assert name in rows, output
    assert rows["**all**"][0] == str(8 * PER_FOLDER)
    assert rows["**known species**"][0] == str(4 * PER_FOLDER)
    for name, cells in rows.items():
        verdicts = [percent(c) for c in cells[1:5]]
        assert sum(verdicts) == pytest.approx(1.0, abs=0.01), name
        if name in ("tulips", "nonflower"):  # no Oxford species: no accuracy columns
            assert cells[5:] == ["", "", "", ""]
            continue
        top1, top5, sure_right, sure_wrong = (percent(c) for c in cells[5:])
        assert 0 <= top1 <= top5 <= 1
        # Sure and right plus sure and wrong is the share called sure.
        assert sure_right + sure_wrong == pytest.approx(verdicts[3], abs=0.01), name
    assert percent(rows["nonflower"][1]) >= 0.5  # most ordinary photos are "not a flower"
