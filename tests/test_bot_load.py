"""bench/bot_load.py's open loop at a small scale: CI fails when photos go unanswered."""

from __future__ import annotations

import re

import pytest
from conftest import load_bench


def test_the_open_loop_answers_every_photo(capsys: pytest.CaptureFixture[str]) -> None:
    """3 photos/s for 5 s, each from a new user, through the fake Bot API to the real bot; the
    full run is `python bench/bot_load.py --open-loop 10,20,30`."""
    bench = load_bench("bot_load")
    assert bench.main(["--open-loop", "3", "--seconds", "5", "--drain", "30"]) == 0
    out = capsys.readouterr().out
    row = re.search(
        r"^\| 3 \| (\d+) \| [\d.]+ \| ([\d.]+)% \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+) s "
        r"\| ([\d.]+) s \| (\d+) \| (\d+) \| (\d+) MB \| (\d+) MB \|$",
        out,
        re.MULTILINE,
    )
    assert row is not None, out
    sent, answered, p50, p95, slowest, answer_p95, _held, twice, rss, peak = (
        float(x) for x in row.groups()
    )
    assert sent >= 5  # about 15 expected at 3/s
    assert answered == 100.0, out
    assert 0 < p50 <= p95 <= slowest < 30
    assert p95 <= answer_p95 < 30
    assert twice == 0
    assert 0 < rss <= peak
    assert "load average" in out


def test_the_memory_line_reads_the_two_checkpoints() -> None:
    bench = load_bench("bot_load")
    result = {"rss MB at 100": 200.0, "rss MB at 1000": 210.0, "answered": 1000, "sent": 1000}
    line = bench.memory_line(result | {"rate": 10.0})
    assert "200 MB after 100" in line and "210 MB after 1,000" in line
    assert "ratio 1.050" in line and "1000 of 1000 answered" in line
