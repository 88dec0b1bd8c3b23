"""Retraining time and peak memory against the amount of feedback.

    python bench/retrain.py [--data ../shared/data/oxford102-224]
                            [--cache-dir .cache/features] [--sizes 1000 10000 100000]

Each size runs in a fresh process (peak RSS is per process): the base data set's cached features
plus N synthetic feedback rows whose embeddings are real cached test features (serving views)
with their true labels, from 1,000 users. "retrain" is model_training.retrain.retrain: fitting
the candidate and scoring old and new head on val, test and the held-out feedback.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from pathlib import Path

from model_training.defaults import SHIPPED_MODEL_DIR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

USERS = 1000


def measure(model: Path, data: Path, cache_dir: Path, size: int) -> dict[str, float]:
    import numpy as np

    from model_training.artifact import load_artifact
    from model_training.retrain import FeedbackData, RetrainOptions, load_base, retrain
    from model_training.train import RECIPES

    started = time.perf_counter()
    serving = load_artifact(model)
    base = load_base(data, cache_dir, serving, RECIPES["default"].train_views)
    loaded = time.perf_counter() - started
    rng = np.random.default_rng(0)
    drawn = rng.integers(0, len(base.test_y), size)
    feedback = FeedbackData(
        features=base.test_x[drawn],
        labels=base.test_y[drawn],
        user_ids=rng.integers(0, USERS, size),
        photo_ids=np.arange(1, size + 1),
    )
    result = retrain(serving, base, feedback, f"bench-{size}", RetrainOptions())
    return {
        "load_s": loaded,
        "retrain_s": result.seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/oxford102-224"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/features"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    args = parser.parse_args()
    print("| feedback rows | load base features (s) | retrain (s) | peak memory (MB) |")
    print("|---:|---:|---:|---:|")
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for size in args.sizes:
            row = pool.apply(measure, (args.model, args.data, args.cache_dir, size))
            print(
                f"| {size:,} | {row['load_s']:.1f} | {row['retrain_s']:.1f} "
                f"| {row['peak_mb']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
