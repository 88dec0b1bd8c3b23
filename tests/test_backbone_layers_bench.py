"""bench/backbone_layers.py at a small scale: two Oxford photos of each species a split, three
real-world photos of each species a half, a short fit (the docs' table is every photo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED, run_bench, table_cells

pytestmark = pytest.mark.slow
SETS = ["out_relu", "out_relu+block_13_expand_relu/std"]


def table_rows(output: str) -> list[list[str]]:
    return [
        table_cells(line)
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith("| features")
    ]


def test_the_benchmark_scores_each_feature_set(tmp_path: Path) -> None:
    output = run_bench(
        "backbone_layers",
        *("--data", str(SHARED / "data"), "--per-species", "2", "--limit", "3"),
        *("--seeds", "0", "--epochs", "3", "--sets", ",".join(SETS)),
        cwd=tmp_path,
        timeout=900,
    )
    assert "scored: heldout 204, garden 24, flowers 12 photos" in output
    rows = table_rows(output)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("out_relu", "1280", "0"),
        ("**out_relu**", "1280", "mean"),
        ("out_relu+block_13_expand_relu/std", "1856", "0"),  # 1280 + 576 channels
        ("**out_relu+block_13_expand_relu/std**", "1856", "mean"),
    ]
    for cells in rows:
        scores = [float(c) for c in cells[3:]]
        assert len(scores) == 6 and all(0.0 <= s <= 1.0 for s in scores), cells
        assert scores[0] > 0.2, cells  # held-out top-1: far above chance (1/102) after 3 epochs
        pairs = zip(scores[::2], scores[1::2], strict=True)
        assert all(top5 >= top1 for top1, top5 in pairs), cells
