"""Where the bot's CPU goes while it answers photos: each step's share, from a sampling profiler.

    python bench/bot_profile.py [--rate 10] [--seconds 30] [--samples-per-second 50]
                                 [--samples-out FILE]

Runs `bench/bot_load.py --open-loop RATE` (the real bot, the shipped model, SQLite, the fake Bot
API on 127.0.0.1, each photo from a new user) under py-spy (`pip install py-spy`), then sorts
every sample of a busy thread into the step of the photo's path it was in: the deepest frame
that names a step decides (numpy inside `views.py` is views; PIL inside `photos.py` is decode).
The bot runs in a process of its own, the fake Bot API and the photo sender in the bench's;
py-spy follows both, and counts the bench's samples apart, and start-up (imports and loading
the model) too. The table gives each step's share of the bot's own samples (per-photo
milliseconds are left out: under load py-spy falls behind its sampling rate, so sample counts
are not durations; their shares still hold).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_SIDE = "the fake Bot API and the sender (bench, not the bot)"
START_UP = "start-up (imports, loading the model)"
OTHER = "other (Python runtime, threads)"
# (step, substrings of a frame's "function (file:line)"), matched from the deepest frame up.
STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("backbone (LiteRT)", ("ai_edge_litert", "lite.py")),
    ("views", ("views.py",)),
    ("head", ("head.py",)),
    ("honesty scores", ("honesty.py",)),
    ("decode (Pillow)", ("photos.py",)),
    ("verdict, top-5, reply text", ("abstention.py", "classifier.py", "replies.py", "i18n.py")),
    ("database (SQLAlchemy, SQLite)", ("sqlalchemy", "storage/", "sqlite3")),
    ("Bot API calls: download, reply (httpx)", ("httpx", "httpcore", "h11", "telegram/_bot.py")),
    ("python-telegram-bot updates and handlers", ("telegram/", "bot/")),
    ("event loop (asyncio)", ("asyncio/", "selectors.py")),
]
# The fake server's threads idle in socketserver's poll loop, outside its own module.
BENCH_FRAMES = ("fake_telegram", "socketserver.py", "http/server.py", "Replies.", "look (bot_load")
START_UP_FRAMES = ("_find_and_load", "ServingModel.load", "build_application")


def step_of(frames: list[str]) -> str:
    """The step a sampled stack (outermost frame first) belongs to."""
    if any(marker in frame for frame in frames for marker in BENCH_FRAMES):
        return BENCH_SIDE
    if any(marker in frame for frame in frames for marker in START_UP_FRAMES):
        return START_UP
    for frame in reversed(frames):
        for step, markers in STEPS:
            if any(marker in frame for marker in markers):
                return step
    return OTHER


def read_samples(raw: Path) -> Counter[str]:
    """py-spy's raw (collapsed) output: one stack a line, frames joined by ';', then a count."""
    steps: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            steps[step_of(stack.split(";"))] += int(count)
    return steps


def table(steps: Counter[str], photos: int) -> str:
    bot = {step: n for step, n in steps.items() if step not in (BENCH_SIDE, START_UP)}
    total = sum(bot.values())
    lines = ["| step | share of the bot's CPU | samples |", "|---|---:|---:|"]
    for step, n in sorted(bot.items(), key=lambda item: -item[1]):
        lines.append(f"| {step} | {n / total:.1%} | {n} |")
    lines.append(f"| **the bot, {photos} photos answered** | 100% | {total} |")
    lines.append(f"\nnot counted above: {START_UP} {steps[START_UP]} samples, {BENCH_SIDE} ")
    lines[-1] += f"{steps[BENCH_SIDE]} ({steps[BENCH_SIDE] / (total + steps[BENCH_SIDE]):.0%})"
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10, help="photos/s offered")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--drain", type=float, default=20)
    parser.add_argument("--samples-per-second", type=int, default=50)
    parser.add_argument("--samples-out", type=Path, help="keep py-spy's raw stacks (flamegraph.pl)")
    parser.add_argument(
        "--gil", action="store_true", help="only the thread holding the GIL: the serial part"
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        print("bench/bot_profile.py needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        raw, figures = Path(scratch) / "samples.txt", Path(scratch) / "open_loop.json"
        bench = [sys.executable, str(ROOT / "bench" / "bot_load.py"), "--open-loop"]
        bench += [f"{args.rate:g}", "--seconds", f"{args.seconds:g}", "--drain", f"{args.drain:g}"]
        bench += ["--json", str(figures)]
        record = [spy, "record", "--rate", str(args.samples_per_second), "--format", "raw"]
        record += ["--gil"] if args.gil else []
        spied = subprocess.run(
            [*record, "--output", str(raw), "--nonblocking", "--subprocesses", "--", *bench],
            capture_output=True,
            text=True,
        )
        if spied.returncode != 0 or not raw.exists() or not figures.exists():
            print(f"py-spy failed ({spied.returncode}):\n{spied.stderr[-2000:]}", file=sys.stderr)
            return 1
        steps = read_samples(raw)
        answered = json.loads(figures.read_text())[0]["answered"]
        if args.samples_out:
            shutil.copy(raw, args.samples_out)
    print(spied.stdout)
    print(table(steps, answered))
    print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
