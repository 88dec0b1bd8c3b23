"""Photo -> top-5 speed: our path beside the naive per-photo `model.predict`, in the same run.

    python bench/latency.py [--repeats 40]

Prints a Markdown table: single-photo latency (p50, p95) from JPEG bytes for a 500 px photo and
a 4000x3000 one, and batch throughput. Absolute times vary with the machine; the ratios hold.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from model_training.classifier import FlowerClassifier
from model_training.defaults import SHIPPED_MODEL_DIR
from model_training.photos import decode_photo, load_photo

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "photos"


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(times, q) * 1000)


def time_each(fn: Callable[[], object], repeats: int) -> list[float]:
    for _ in range(3):  # warm-up: graph tracing, allocator, caches
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--batch-photos", type=int, default=64)
    args = parser.parse_args()

    classifier = FlowerClassifier.from_folder(args.model)
    naive_model = classifier.model

    def naive(data: bytes) -> list:
        probs = naive_model.predict(load_photo(data)[None], verbose=0)[0]
        return classifier.top_k_of(probs)

    samples = sorted(SAMPLES.glob("*.jpg"))
    phone = samples[0].read_bytes()  # 500 px short side, as Telegram delivers a photo
    camera = photo_of_size(phone, (4000, 3000))  # a full-resolution camera file
    rows = []
    for label, data in (("500 px photo", phone), ("4000x3000 photo", camera)):
        ours = time_each(lambda d=data: classifier.identify(d), args.repeats)
        slow = time_each(lambda d=data: naive(d), args.repeats)
        rows.append((label, ours, slow))

    print(
        f"views per photo: {len(classifier.artifact.metadata.serve_views)}, "
        f"CPU threads: {os.cpu_count()}\n"
    )
    print(
        "| single photo, bytes -> top-5 | ours p50 | ours p95 | naive predict p50 | "
        "naive p95 | speed-up (p50) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, ours, slow in rows:
        print(
            f"| {label} | {percentile_ms(ours, 50):.1f} ms | {percentile_ms(ours, 95):.1f} ms | "
            f"{percentile_ms(slow, 50):.1f} ms | {percentile_ms(slow, 95):.1f} ms | "
            f"{statistics.median(slow) / statistics.median(ours):.1f}x |"
        )

    photos = [p.read_bytes() for p in samples]
    batch = [photos[i % len(photos)] for i in range(args.batch_photos)]
    with ThreadPoolExecutor() as pool:  # Pillow releases the GIL while decoding

        def batched() -> None:
            classifier.answers(list(pool.map(decode_photo, batch)))

        ours_s = min(time_each(batched, 3))
    naive_s = min(time_each(lambda: [naive(d) for d in batch], 2))
    print(f"\n| throughput, {len(batch)} photos | photos/s |\n|---|---:|")
    print(f"| ours: parallel decode, one batched call | {len(batch) / ours_s:.1f} |")
    print(f"| naive: predict per photo | {len(batch) / naive_s:.1f} |")
    print(f"| speed-up | {naive_s / ours_s:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
