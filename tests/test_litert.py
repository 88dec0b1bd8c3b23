"""bench/litert.py (the quantized backbones against the Keras model) runs end to end, small."""

from __future__ import annotations

import pytest
from conftest import run_bench


@pytest.mark.slow  # three conversions, 115 photos through each: minutes on 2 loaded cores
def test_quantization_bench_prints_every_variant() -> None:
    output = run_bench("litert", "--limit", "1", "--calibration-photos", "1", timeout=900)
    rows = [line for line in output.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| Keras float32 (reference)",
        "| none",
        "| dynamic",
        "| integer",
    ]
    # The float conversion answers as Keras does: no verdict changed.
    assert rows[2].split(" | ")[4:6] == ["0.0%", "0.0%"]
