"""bench/latency.py at a small scale, with this checkout as its own baseline: every metric is
measured for both, in separate processes (the docs' table comes from the same script)."""

from __future__ import annotations

from conftest import ROOT, run_bench, table_cells

METRICS = [
    "500 px p50 ms",
    "500 px p95 ms",
    "4000x3000 p50 ms",
    "4000x3000 p95 ms",
    "throughput photos/s",
    "start -> first answer s",
    "resident memory MB",
]


def test_the_benchmark_measures_both_checkouts() -> None:
    output = run_bench(
        "latency",
        *("--repeats", "3", "--batch-photos", "4", "--rounds", "1", "--baseline", str(ROOT)),
        timeout=600,
    )
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    header = table_cells(lines[0])
    assert header[1].startswith("baseline (") and header[2] == "this checkout", header
    table = {
        cells[0]: [float(c) for c in cells[1:]]
        for line in lines[1:]
        for cells in [table_cells(line)]
    }
    assert list(table) == METRICS
    for values in table.values():
        assert len(values) == 2 and all(v > 0 for v in values)
    for checkout in (0, 1):
        assert table["500 px p50 ms"][checkout] <= table["500 px p95 ms"][checkout]
        assert table["4000x3000 p50 ms"][checkout] <= table["4000x3000 p95 ms"][checkout]
        # The serving process holds LiteRT, not TensorFlow: far under the 400 MB goal.
        assert table["resident memory MB"][checkout] < 400
