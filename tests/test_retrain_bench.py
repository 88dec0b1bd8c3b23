"""bench/retrain.py at a small scale: labelled photos stored in SQLite are read back, every one,
and the refit runs on them (the README's table comes from the same script at 10k to 1M)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_retraining_benchmark_reads_back_every_stored_photo(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "retrain.py"),
            "--sizes",
            "400",
            "--database",
            f"sqlite:///{tmp_path / 'bench.sqlite'}",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=tmp_path,  # the script finds the shipped model itself
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in run.stdout.splitlines()
        if line.startswith("| 400 ")
    ]
    assert len(rows) == 1, run.stdout
    photos, source, read_back, read_s, retrain_s, batch, peak_mb = rows[0]
    assert (photos, source, read_back, batch) == ("400", "sqlite", "400", "32")
    assert float(read_s) > 0 and float(retrain_s) > 0
    assert 200 < float(peak_mb.replace(",", "")) < 4000  # the model and 7,365 rows, far from 4 GB
