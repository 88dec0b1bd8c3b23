"""The served backbone in LiteRT: float32, dynamic-range and full-integer quantization against
the Keras model, on the base held-out set and the real-world measuring halves.

    python bench/litert.py [--limit N]

Per variant: the backbone file's size, base held-out top-1, the share of `garden_photos`' and
`flower_photos`' measuring halves (model_training/realworld.py) whose verdict differs from the
Keras float32 model's, and one photo's 4 views through the backbone (p50). The Keras model
runs here (the feature cache holds what the served backbone computes), the variants over the
same decoded photos. A quantized variant is kept only if top-1 moves by at most 0.3 points and
each set's verdicts by at most 1% of its photos; otherwise the float model stays.
--limit N: at most N photos per species or folder (CI runs it small, tests/test_litert.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_training.classifier import FlowerClassifier
from model_training.convert import backbone_tflite
from model_training.data import read_split
from model_training.defaults import SHIPPED_MODEL_DIR
from model_training.features import keras_features, lite_features
from model_training.lite import LiteBackbone
from model_training.photos import load_photo
from model_training.realworld import NONFLOWER_FOLDER, read_garden, read_realworld
from model_training.views import view_images
from model_training.workflow import heldout_photos

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VARIANTS = ("none", "dynamic", "integer")
MAX_TOP1_MOVE = 0.003
MAX_VERDICTS_CHANGED = 0.01
CALIBRATION_SEED = 0
HEADER = "verdicts changed: garden_photos | flower_photos"


@dataclass(frozen=True)
class PhotoSet:
    name: str
    encoded: list[bytes]
    labels: np.ndarray  # Oxford class, -1 where none


def first_of_each(groups: np.ndarray, limit: int | None) -> np.ndarray:
    """A mask of at most `limit` rows of each group (all where None)."""
    keep = np.ones(len(groups), dtype=bool)
    if limit is not None:
        for group in np.unique(groups):
            keep[np.flatnonzero(groups == group)[limit:]] = False
    return keep


def photo_sets(classifier: FlowerClassifier, limit: int | None) -> list[PhotoSet]:
    """The base held-out set, and the measuring halves of garden_photos and flower_photos."""
    heldout = heldout_photos(read_split(DATA / "oxford102-224", "test", classifier.class_names))
    keep = first_of_each(heldout.labels, limit)
    sets = [
        PhotoSet(
            "base held-out",
            [d for d, k in zip(heldout.encoded, keep, strict=True) if k],
            heldout.labels[keep],
        )
    ]
    for name, photos in (
        ("garden_photos", read_garden(DATA)),
        ("flower_photos", read_realworld(DATA)),
    ):
        measured = photos.measuring_half(limit)
        flowers = measured.subset(measured.folders != NONFLOWER_FOLDER)
        sets.append(PhotoSet(name, flowers.encoded, flowers.oxford_class))
    return sets


def answers(classifier: FlowerClassifier, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(photos, views, 1280) -> top-1 classes and verdicts (every photo here is large enough)."""
    probabilities = classifier.model.head.probabilities(features).mean(axis=1)
    confidence = probabilities.max(axis=1)
    flower, species = classifier.honesty_scores(features, confidence)
    verdicts = [
        classifier.rules.verdict(float(c), float(f), 10**6, float(s))
        for c, f, s in zip(confidence, flower, species, strict=True)
    ]
    return probabilities.argmax(axis=1), np.array(verdicts)


def calibration(views: tuple[str, ...], photos: int) -> Iterator[list[np.ndarray]]:
    """Full-integer calibration: the serving views of a seeded draw of Oxford training photos."""
    train = read_split(DATA / "oxford102-224", "train")
    pick = np.random.default_rng(CALIBRATION_SEED).choice(len(train), photos, replace=False)
    for i in pick:
        for view in view_images(load_photo(train.encoded[i])[None], views):
            yield [view[None]]


def photo_ms(backbone: LiteBackbone, views: tuple[str, ...], encoded: bytes) -> float:
    batch = view_images(load_photo(encoded)[None], views)
    times = []
    for _ in range(23):
        start = time.perf_counter()
        backbone.features(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="at most this many photos per species/folder")
    parser.add_argument("--calibration-photos", type=int, default=100)
    args = parser.parse_args()

    classifier = FlowerClassifier.from_folder(SHIPPED_MODEL_DIR)
    metadata = classifier.model.metadata
    views = tuple(metadata.serve_views)
    sets = photo_sets(classifier, args.limit)
    reference = {
        s.name: answers(classifier, keras_features(s.encoded, views, metadata.scaling, s.name))
        for s in sets
    }
    heldout = sets[0]
    rows = [("Keras float32 (reference)", None, reference)]
    for quantize in VARIANTS:
        model = backbone_tflite(
            metadata.scaling,
            quantize,
            lambda: calibration(views, min(args.calibration_photos, args.limit or 10**9)),
        )
        backbone = LiteBackbone(model)
        answered = {
            s.name: answers(classifier, lite_features(backbone, s.encoded, views)) for s in sets
        }
        rows.append(
            (quantize, (len(model), photo_ms(backbone, views, heldout.encoded[0])), answered)
        )

    base_top1 = (reference[heldout.name][0] == heldout.labels).mean()
    counts = ", ".join(f"{s.name} {len(s.encoded)}" for s in sets)
    print(f"load average {os.getloadavg()}; photos: {counts}\n")
    print(f"| backbone | file | 4 views p50 | base held-out top-1 | {HEADER} | meets the rule |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, size_ms, answered in rows:
        top1 = (answered[heldout.name][0] == heldout.labels).mean()
        changed = [(answered[s.name][1] != reference[s.name][1]).mean() for s in sets[1:]]
        meets = abs(top1 - base_top1) <= MAX_TOP1_MOVE and max(changed) <= MAX_VERDICTS_CHANGED
        size, ms = (f"{size_ms[0] / 1e6:.1f} MB", f"{size_ms[1]:.1f} ms") if size_ms else ("", "")
        shares = " | ".join(f"{share:.1%}" for share in changed)
        print(f"| {name} | {size} | {ms} | {top1:.3f} | {shares} | {'yes' if meets else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
