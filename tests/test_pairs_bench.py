"""bench/pairs.py: a photo alone vs two photos of one species answered together by the album rule,
on the real-world measuring halves; at a small scale here (the docs' table comes from the same
script on every photo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHARED, load_bench, run_bench, table_cells

from model_training.albums import CHOSEN_KNOWN, Known
from model_training.defaults import DEFAULT_MODEL_DIR

PER_FOLDER = 4
COLUMNS = [
    "set",
    "species",
    "pairs",
    "single top-1",
    "pair top-1",
    "single sure and right",
    "pair sure and right",
    "single sure and wrong",
    "pair sure and wrong",
]


def bench_rules() -> list[str]:
    return [rule.value for rule in Known]


def percent(cell: str) -> float:
    return float(cell.rstrip("%")) / 100


def test_pairs_are_of_one_species_and_use_each_photo_once(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # as when the script runs: realworld
    bench = load_bench("pairs")
    species = np.array([3, 3, 3, 7, 7, 9, 3, 7, 7])
    pairs = bench.draw_pairs(species, seed=0)
    assert pairs.shape == (4, 2)  # 4 photos of 3 and of 7 -> 2 pairs each; 9 alone: none
    assert (species[pairs[:, 0]] == species[pairs[:, 1]]).all()
    assert len(set(pairs.ravel())) == pairs.size
    assert not np.array_equal(pairs, bench.draw_pairs(species, seed=1))  # another pairing


@pytest.mark.slow
def test_the_benchmark_prints_single_against_pair_per_set(tmp_path: Path) -> None:
    output = run_bench(
        "pairs",
        *("--data", str(SHARED / "data"), "--limit", str(PER_FOLDER), "--draws", "2"),
        *("--cache-dir", str(tmp_path / "features")),  # the backbone really runs on these photos
        cwd=tmp_path,
    )
    lines = output.splitlines()
    version = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())["version"]
    assert any(line.startswith(f"{version}: ") for line in lines)
    assert "different plants" in output
    assert table_cells(next(line for line in lines if line.startswith("| set"))) == COLUMNS
    cells_of = [table_cells(line) for line in lines if line.startswith("| ")]
    rows = {cells[0]: cells[1:] for cells in cells_of if len(cells) == 9 and cells[1].isdigit()}
    assert {name: (int(c[0]), int(c[1])) for name, c in rows.items()} == {
        "garden_photos": (8, 8 * PER_FOLDER // 2),
        "flower_photos (known species)": (4, 4 * PER_FOLDER // 2),
    }
    for name, cells in rows.items():
        top1, pair_top1, sure_right, pair_sure_right, sure_wrong, pair_sure_wrong = map(
            percent, cells[2:]
        )
        assert 0 <= sure_right <= top1 <= 1 and 0 <= pair_sure_right <= pair_top1 <= 1, name
        assert sure_right + sure_wrong <= 1 and pair_sure_right + pair_sure_wrong <= 1, name
        # One goal line a set, its figures those of the table.
        (goal,) = [line for line in lines if line.startswith(f"{name}: sure and right")]
        gain = float(goal.split("sure and right ")[1].split(" points")[0])
        assert gain == pytest.approx((pair_sure_right - sure_right) * 100, abs=0.11), goal
        met = gain >= 10 and pair_sure_wrong <= sure_wrong
        assert goal.endswith(" met" if met else " not met"), goal
    # Each species-score rule on both halves; the served one's figures are the first table's.
    rules = [cells for cells in cells_of if len(cells) == 2 + len(bench_rules())]
    assert rules[0] == ["set, half", "one photo alone", *bench_rules()]
    by_half = {cells[0]: cells[1:] for cells in rules[1:]}
    assert set(by_half) == {f"{name}, {half}" for name in rows for half in ("measuring", "fitting")}
    for name, cells in rows.items():
        served = by_half[f"{name}, measuring"][1 + bench_rules().index(CHOSEN_KNOWN.value)]
        assert served == f"{cells[5]} / {cells[7]}"
        assert by_half[f"{name}, measuring"][0] == f"{cells[4]} / {cells[6]}"
