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


def test_the_capacity_run_compares_the_bot_with_the_model_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--capacity at a small scale: the bot in a closed loop beside the model path alone, and
    the CPU each spends a photo; the full run is `python bench/bot_load.py --capacity`."""
    bench = load_bench("bot_load")
    args = ["--capacity", "--users", "4", "--seconds", "3", "--rounds", "1", "--one-view"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    row = re.search(r"^\| this checkout \|(.+)\|$", out, re.MULTILINE)
    assert row is not None, out
    cells = [cell.strip() for cell in row.group(1).split("|")]
    bot, model, ratio, bot_cpu, model_cpu, cpu_ratio, bench_cpu = cells
    assert min(float(figure) for figure in (bot, model, bot_cpu, model_cpu, bench_cpu)) > 0
    assert float(ratio) == pytest.approx(float(bot) / float(model), abs=0.01)
    assert float(cpu_ratio) == pytest.approx(float(model_cpu) / float(bot_cpu), abs=0.02)
