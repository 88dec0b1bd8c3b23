"""Photo -> answer speed through the serving path, start-up time and idle memory; with
--baseline, the same measured on another checkout in the same run, rounds interleaved.

    python bench/latency.py [--repeats 40] [--baseline DIR] [--rounds 2]

Single-photo latency (p50, p95) from JPEG bytes to the answer with the 4 serving views, for a
500 px photo (as Telegram delivers one) and a 4000x3000 one; batch throughput (parallel decode,
one `answers` call); process start -> first answer (importing the bot, loading the shipped model,
one answer) and the resident memory of that process afterwards. The baseline is any checkout
(e.g. `git worktree add /tmp/before HEAD~1`), run with this environment's Python and the same
photos: every measurement runs in a fresh process with that checkout first on PYTHONPATH.
Prints a Markdown table of medians over the rounds, and the load average before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples" / "photos"
# Process start -> first answer, as the bot starts: its imports, the model, one photo.
FIRST_ANSWER = """
import bot.app
from model_training.classifier import FlowerClassifier
from model_training.defaults import SHIPPED_MODEL_DIR
FlowerClassifier.from_folder(SHIPPED_MODEL_DIR).identify(open({photo!r}, "rb").read())
rss = next(line for line in open("/proc/self/status") if line.startswith("VmRSS"))
print(int(rss.split()[1]) // 1024)
"""


def time_each(fn: Callable[[], object], repeats: int) -> list[float]:
    for _ in range(3):  # warm-up: allocation, caches
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def photo_of_size(source: bytes, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(source)).convert("RGB").resize(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def measure(repeats: int, batch_photos: int) -> dict[str, float]:
    """This process's checkout: latency and throughput, in ms and photos/s."""
    from model_training.classifier import FlowerClassifier
    from model_training.defaults import SHIPPED_MODEL_DIR
    from model_training.photos import decode_photo

    classifier = FlowerClassifier.from_folder(SHIPPED_MODEL_DIR)
    samples = sorted(SAMPLES.glob("*.jpg"))
    phone = samples[0].read_bytes()  # 500 px short side
    results = {}
    for label, data in (("500 px", phone), ("4000x3000", photo_of_size(phone, (4000, 3000)))):
        times = time_each(lambda d=data: classifier.identify(d), repeats)
        results[f"{label} p50 ms"] = float(np.percentile(times, 50) * 1000)
        results[f"{label} p95 ms"] = float(np.percentile(times, 95) * 1000)
    photos = [p.read_bytes() for p in samples]
    batch = [photos[i % len(photos)] for i in range(batch_photos)]
    with ThreadPoolExecutor() as pool:  # Pillow releases the GIL while decoding
        seconds = min(time_each(lambda: classifier.answers(list(pool.map(decode_photo, batch))), 3))
    results["throughput photos/s"] = batch_photos / seconds
    return results


def run_checkout(checkout: Path, args: list[str]) -> str:
    """A fresh process whose imports come from `checkout` first (run there: `python -c` puts
    the working directory before PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.setdefault("KERAS_HOME", str(ROOT / ".cache" / "keras"))
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=checkout, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def round_of(checkout: Path, repeats: int, batch_photos: int) -> dict[str, float]:
    measured = json.loads(
        run_checkout(
            checkout,
            [__file__, "--measure", f"--repeats={repeats}", f"--batch-photos={batch_photos}"],
        )
    )
    photo = str(sorted(SAMPLES.glob("*.jpg"))[0])
    start = time.perf_counter()
    rss = run_checkout(checkout, ["-c", FIRST_ANSWER.format(photo=photo)])
    measured["start -> first answer s"] = time.perf_counter() - start
    measured["resident memory MB"] = float(rss)
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--batch-photos", type=int, default=64)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured alongside")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # one round's child: JSON on the last line
        print(json.dumps(measure(args.repeats, args.batch_photos)))
        return 0

    checkouts = {"this checkout": ROOT}
    if args.baseline:
        checkouts = {f"baseline ({args.baseline})": args.baseline.resolve(), **checkouts}
    load_before = os.getloadavg()
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):  # interleaved: both see the same load
        for name, checkout in checkouts.items():
            rounds[name].append(round_of(checkout, args.repeats, args.batch_photos))
    load_after = os.getloadavg()

    names = list(checkouts)
    print(f"CPU threads: {os.cpu_count()}; medians of {args.rounds} rounds\n")
    print(f"| | {' | '.join(names)} |\n|---|{'---:|' * len(names)}")
    for metric in rounds[names[0]][0]:
        cells = [f"{statistics.median(r[metric] for r in rounds[n]):.1f}" for n in names]
        print(f"| {metric} | {' | '.join(cells)} |")
    print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {load_after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
