"""bench/retrain.py at a small scale: labelled photos stored in SQLite are read back, every one,
and the refit runs on them (the README's table comes from the same script at 10k to 1M)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_bench, table_cells

pytestmark = pytest.mark.slow


def test_the_retraining_benchmark_reads_back_every_stored_photo(tmp_path: Path) -> None:
    output = run_bench(
        "retrain",
        *("--sizes", "400", "--database", f"sqlite:///{tmp_path / 'bench.sqlite'}"),
        cwd=tmp_path,  # the script finds the shipped model itself
    )
    rows = [table_cells(line) for line in output.splitlines() if line.startswith("| 400 ")]
    assert len(rows) == 1, output
    photos, source, read_back, read_s, retrain_s, batch, peak_mb = rows[0]
    assert (photos, source, read_back, batch) == ("400", "sqlite", "400", "32")
    assert float(read_s) > 0 and float(retrain_s) > 0
    assert 200 < float(peak_mb.replace(",", "")) < 4000  # the model and 7,365 rows, far from 4 GB
