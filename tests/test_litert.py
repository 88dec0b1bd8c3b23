"""bench/litert.py (the quantized backbones against the Keras model) runs end to end, small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # three conversions, 115 photos through each: minutes on 2 loaded cores
def test_quantization_bench_prints_every_variant() -> None:
    result = subprocess.run(
        [sys.executable, "bench/litert.py", "--limit", "1", "--calibration-photos", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| Keras float32 (reference)",
        "| none",
        "| dynamic",
        "| integer",
    ]
    # The float conversion answers as Keras does: no verdict changed.
    assert rows[2].split(" | ")[4:6] == ["0.0%", "0.0%"]
