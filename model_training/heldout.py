"""The held-out sets. The base one: a fixed number of Oxford test photos per species that no
product model ever trains on; the gate and the "base held-out" figures of docs/results.md are
measured on it. And the feedback's: about a fifth of the users' labelled photos, which the
retraining gate measures and never trains on (held_out; no Keras here, so the feedback export
splits photos the same way in a serving-only install).

The list ships with the package (splits/oxford102-heldout.csv, column `id`: the photos' TFRecord
ids) so every model, retraining and benchmark uses the same photos. It was written once by

    python -m model_training.heldout ../shared/data/oxford102-224
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

PER_SPECIES = 12
SEED = 0
HELDOUT_FILE = "oxford102-heldout.csv"
HOLDOUT_EVERY = 5  # about one photo in this many is held out of training for the gate
HOLDOUT_KEY = b"flowerbot gate hold-out v1"  # changing it changes which photos are held out


def held_out(photo_id: int) -> bool:
    """Whether the gate holds this photo out of training: a keyed hash of its id, the same for
    a photo whoever sent it and whenever it arrived. Ids divisible by HOLDOUT_EVERY were chosen
    before; users taking turns put all of those on a few of them (README)."""
    digest = hashlib.blake2b(str(photo_id).encode(), key=HOLDOUT_KEY, digest_size=8).digest()
    return int.from_bytes(digest, "big") % HOLDOUT_EVERY == 0


def heldout_ids() -> frozenset[str]:
    """The shipped list of held-out photo ids."""
    text = resources.files("model_training").joinpath("splits", HELDOUT_FILE).read_text()
    return frozenset(row["id"] for row in csv.DictReader(text.splitlines()))


def choose_heldout(ids: list[str], labels: np.ndarray, per_species: int, seed: int) -> list[str]:
    """`per_species` photos of each species, drawn with a fixed seed, in id order."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for species in np.unique(labels):
        members = sorted(i for i, label in zip(ids, labels, strict=True) if label == species)
        chosen += rng.choice(members, size=min(per_species, len(members)), replace=False).tolist()
    return sorted(chosen)


def main() -> None:
    from model_training.data import read_split

    parser = argparse.ArgumentParser(description="write the base held-out list")
    parser.add_argument("data", type=Path, help="Oxford 102 in Kaggle's TFRecord layout")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "splits" / HELDOUT_FILE)
    args = parser.parse_args()
    test = read_split(args.data, "test")
    rows = choose_heldout(test.ids, test.labels, PER_SPECIES, SEED)
    with args.out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id"])
        writer.writerows([i] for i in rows)
    print(f"{len(rows)} held-out photos -> {args.out}")


if __name__ == "__main__":
    main()
