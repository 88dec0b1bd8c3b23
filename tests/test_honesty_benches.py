"""bench/thresholds.py, bench/small_photos.py and bench/taxonomy.py at a small scale: one held-out
Oxford photo a species, a few real-world and non-flower photos (the docs' tables come from the
same scripts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED, run_bench, table_cells

pytestmark = pytest.mark.slow


def percent(cell: str) -> float:
    return float(cell.rstrip("%")) / 100


def test_thresholds_are_measured_on_held_out_photos(tmp_path: Path) -> None:
    output = run_bench(
        "thresholds",
        *("--data", str(SHARED / "data" / "oxford102-224"), "--per-class", "1"),
        *("--cache-dir", str(tmp_path / "features")),
        timeout=600,
    )
    measured = {
        cells[0]: cells[1]
        for line in output.splitlines()
        if line.startswith("| ")
        for cells in [table_cells(line)]
    }
    wrongly_rejected = measured["held-out flowers wrongly rejected"]
    assert "of 102)" in wrongly_rejected  # one photo a species
    assert percent(wrongly_rejected.split()[0]) < 0.05, wrongly_rejected
    flagged = [measured[f"held-out answers flagged '{v}'"] for v in ("not sure", "unknown species")]
    assert all(0 <= percent(cell) <= 1 for cell in flagged)
    assert percent(measured["top-1 accuracy of sure answers"]) > 0.9
    rejected = measured["non-flower photos rejected"]
    assert percent(rejected.split()[0]) > 0.7 and "of 28)" in rejected, rejected


def test_small_photos_get_every_verdict_counted(tmp_path: Path) -> None:
    output = run_bench(
        "small_photos",
        *("--data", str(SHARED / "data" / "oxford102-224")),
        *("--flower-photos", str(SHARED / "data" / "flower_photos"), "--per-species", "2"),
        *("--nonflower", str(SHARED / "data" / "nonflower"), "--nonflower-count", "4"),
        *("--sizes", "128", "224"),
        cwd=tmp_path,
        timeout=600,
    )
    assert "**Oxford held-out photos** (size rule off)" in output
    flower_rows = [
        table_cells(line)
        for line in output.splitlines()
        if line.startswith(("| 128 px", "| 224 px"))
    ]
    oxford = [cells for cells in flower_rows if cells[1] == "102"]
    assert [cells[0] for cells in oxford] == ["128 px", "224 px"]
    for cells in oxford:
        # sure, not sure, unknown species and not a flower: every answer in one of them.
        assert sum(percent(c) for c in cells[4:8]) == pytest.approx(1.0, abs=0.002), cells
    real_rules = [
        table_cells(line) for line in output.splitlines() if line.startswith("| Oxford held-out |")
    ]
    assert [cells[1] for cells in real_rules] == ["128 px", "224 px"]
    for cells in real_rules:
        assert sum(percent(c) for c in cells[3:8]) == pytest.approx(1.0, abs=0.002), cells
    # Under 160 px (the shipped size rule) every answer is "too small".
    assert percent(real_rules[0][3]) == 1.0 and percent(real_rules[1][3]) == 0.0


def test_taxonomy_bench_counts_groups_of_unsure_answers(tmp_path: Path) -> None:
    """The group cut chosen on all of val; the real-world sets at four photos a species."""
    output = run_bench(
        "taxonomy",
        *("--data", str(SHARED / "data"), "--limit", "4"),
        *("--cache-dir", str(tmp_path / "features")),
        timeout=900,
    )
    chosen = next(line for line in output.splitlines() if line.startswith("smallest cut"))
    assert float(chosen.rsplit(": ", 1)[1]) >= 0.5, chosen  # a "probably" holds at least half
    rows = {
        cells[0]: cells[1:]
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith("| set") and "(" in line
        for cells in [table_cells(line)]
    }
    photos = {name: int(cells[0]) for name, cells in rows.items()}
    assert photos == {
        "Oxford val (a head fitted without val)": 1020,
        "Oxford val (shipped head, trained on val)": 1020,
        "garden_photos (measure)": 8 * 4,
        "flower_photos known species (measure)": 4 * 4,
        "flower_photos tulips (measure)": 4,
    }
    unsure = {name: int(cells[1]) for name, cells in rows.items()}
    # The head that never saw val is unsure of more of it than the one trained on it.
    assert (
        unsure["Oxford val (a head fitted without val)"]
        > unsure["Oxford val (shipped head, trained on val)"]
    )
    for name, cells in rows.items():
        given = int(cells[2].split("(")[1].rstrip(")"))
        right = int(cells[3].split("(")[1].rstrip(")")) if given else 0
        assert 0 <= right <= given <= unsure[name] <= photos[name], (name, cells)
    # No Oxford species is a tulip, so no group can name one.
    assert rows["flower_photos tulips (measure)"][5].startswith(("0.0%", "-"))
