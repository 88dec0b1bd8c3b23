"""Retraining time and peak memory against the amount of feedback.

    python bench/retrain.py [--sizes 10000 100000 1000000] [--database sqlite:///runs/bench.sqlite]

Each size runs in a fresh process (peak RSS is per process). The feedback photos are synthetic:
a real base photo's features (from the model folder's base.npz) plus a little noise, as four
serving views, with its true label, from 1,000 users. Without --database they are generated as
they are streamed into model_training.retrain.retrain_rows (the training code's own memory);
with --database they are first stored through storage.add_photo / record_feedback and read back
the way the bot's retraining reads them (iter_labelled_examples, in chunks), so the database
side is measured too. "retrain" is model_training.retrain.retrain: fitting the candidate and
scoring old and new head for the gate.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from collections.abc import Iterator
from pathlib import Path

from model_training.defaults import SHIPPED_MODEL_DIR

USERS = 1000
VIEWS = 4


def synthetic_photos(size: int, seed: int = 0) -> Iterator[tuple[int, int, object, int]]:
    """(photo id, user id, (views, dim) features, label), one at a time."""
    import numpy as np

    from model_training.artifact import load_base_rows

    base = load_base_rows(SHIPPED_MODEL_DIR)
    rng = np.random.default_rng(seed)
    for photo_id in range(1, size + 1):
        row = int(rng.integers(len(base.train_y)))
        noise = rng.normal(0, 0.05, (VIEWS, base.train_x.shape[1])).astype(np.float32)
        features = np.maximum(base.train_x[row].astype(np.float32) + noise, 0)
        yield photo_id, int(rng.integers(USERS)), features, int(base.train_y[row])


def fill_database(url: str, size: int) -> None:
    """`size` labelled photos in a database emptied first, 5,000 to a transaction.

    The rows are those the bot writes (a photo, its prediction, the user's feedback), inserted
    with SQLAlchemy's bulk INSERT (executemany) and explicit ids: row by row through add_photo,
    a million photos took hours here, and it is the reading back that this benchmark measures."""
    from itertools import islice

    from sqlalchemy import delete, insert

    from storage import Database, Feedback, Photo, Prediction, ensure_user
    from storage.models import encode_features

    database = Database(url)
    database.upgrade()
    with database.session() as session:
        session.execute(delete(Photo))  # predictions and feedback go with their photos
        for user in range(USERS):
            ensure_user(session, user)
    top1 = [{"species": "bench", "index": 0, "confidence": 1.0}]
    photos = synthetic_photos(size)
    while chunk := list(islice(photos, 5000)):
        photo_rows, prediction_rows, feedback_rows = [], [], []
        for photo_id, user, features, label in chunk:
            embedding, shape = encode_features(features)
            photo_rows.append(
                {
                    "id": photo_id,
                    "user_id": user,
                    "chat_id": user,
                    "message_id": photo_id,
                    "content_hash": "0" * 64,
                    "image": b"",
                    "embedding": embedding,
                    "embedding_shape": shape,
                }
            )
            prediction_rows.append(
                {
                    "id": photo_id,
                    "photo_id": photo_id,
                    "model_version": "bench",
                    "top5": top1,
                    "verdict": "sure",
                    "latency_ms": 0.0,
                }
            )
            feedback_rows.append(
                {
                    "photo_id": photo_id,
                    "prediction_id": photo_id,
                    "user_id": user,
                    "species_index": label,
                    "species": "bench",
                }
            )
        with database.session() as session:
            for model, rows in (
                (Photo, photo_rows),
                (Prediction, prediction_rows),
                (Feedback, feedback_rows),
            ):
                session.execute(insert(model), rows)
    database.dispose()


def measure(model: Path, size: int, url: str | None) -> dict[str, float]:
    from model_training.artifact import load_artifact, load_base_rows
    from model_training.retrain import LabelledPhoto, retrain, retrain_rows
    from model_training.train import batch_size_for

    serving, base = load_artifact(model), load_base_rows(model)
    started = time.perf_counter()
    if url is None:
        photos = (LabelledPhoto(*photo) for photo in synthetic_photos(size))
        rows = retrain_rows(base, photos, size, cap=5)
    else:
        from bot.retraining import feedback_photos
        from storage import Database, count_labelled_examples, iter_labelled_examples

        database = Database(url)
        with database.session() as session:
            n = count_labelled_examples(session)
            rows = retrain_rows(base, feedback_photos(iter_labelled_examples(session)), n, cap=5)
        database.dispose()
    loaded = time.perf_counter() - started
    result = retrain(serving, base, rows, f"bench-{size}")
    return {
        "photos": rows.n_feedback_train + len(rows.heldout_y),  # read back, trained or held out
        "load_s": loaded,
        "retrain_s": result.seconds,
        "batch": batch_size_for(len(rows.y), int(serving.metadata.recipe["batch_size"])),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--database", help="store the feedback here first (SQLAlchemy URL)")
    args = parser.parse_args()
    source = args.database.split(":")[0] if args.database else "streamed"
    columns = ["feedback photos", "source", "read back", "read rows (s)", "retrain (s)", "batch"]
    print(f"| {' | '.join(columns)} | peak memory (MB) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for size in args.sizes:
            if args.database:
                pool.apply(fill_database, (args.database, size))
            row = pool.apply(measure, (args.model, size, args.database))
            print(
                f"| {size:,} | {source} | {row['photos']:,} | {row['load_s']:.1f} "
                f"| {row['retrain_s']:.1f} | {row['batch']:,} | {row['peak_mb']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
