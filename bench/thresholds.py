"""Measure the bot's honesty rules: "not sure", "unknown species" and "not a flower" (and size).

    python bench/thresholds.py [--model models/oxford102] [--data ../shared/data/oxford102-224]
        [--per-class N]

The thresholds were chosen on val when the model was trained (model_training/abstention.py);
here they are measured on the base held-out photos of the test split (model_training/heldout.py:
the product models train on the rest of test, never on these) and on real non-flower photos
that ship with scikit-image, scikit-learn and matplotlib (people, animals, objects, textures,
text, space).
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import matplotlib
import numpy as np
import skimage
import sklearn
from PIL import Image

from model_training.abstention import Verdict
from model_training.classifier import FlowerClassifier
from model_training.data import PhotoSet, read_split
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache, split_features
from model_training.model import head_probabilities
from model_training.photos import Photo, read_photo
from model_training.workflow import heldout_photos

# Photos that are not flowers; "grass" and the like are fair game: the bot must not name a species.
NON_FLOWER_FILES = [
    *sorted(Path(skimage.data.__file__).parent.glob("*.png")),
    *sorted(Path(skimage.data.__file__).parent.glob("*.jpg")),
    Path(sklearn.datasets.__file__).parent / "images" / "china.jpg",
    Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
]


def non_flower_photos() -> list[Photo]:
    photos = []
    for path in NON_FLOWER_FILES:
        try:
            photos.append(read_photo(path))
        except Exception:  # a few scikit-image files are masks or 16-bit scans; skip them
            continue
    return photos


def sample(photos: PhotoSet, per_class: int | None) -> PhotoSet:
    """All photos, or the first per_class of each class (features of all held-out photos take
    a while on a CPU the first time; they are cached after)."""
    if per_class is None:
        return photos
    keep = sorted(
        int(i)
        for k in np.unique(photos.labels)
        for i in np.flatnonzero(photos.labels == k)[:per_class]
    )
    return PhotoSet(
        [photos.encoded[i] for i in keep],
        photos.labels[keep],
        [photos.ids[i] for i in keep],
        photos.class_names,
    )


def short_sides(photos: PhotoSet) -> list[int]:
    """The photos' short sides as sent, read from their headers (no decoding)."""
    return [min(Image.open(io.BytesIO(data)).size) for data in photos.encoded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/oxford102-224"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--per-class", type=int, help="only the first N held-out photos a class (default: all)"
    )
    args = parser.parse_args()

    classifier = FlowerClassifier.from_folder(args.model)
    rules = classifier.rules
    views = tuple(classifier.artifact.metadata.serve_views)
    cache = FeatureCache(args.cache_dir, classifier.artifact.metadata.scaling)
    test = sample(heldout_photos(read_split(args.data, "test")), args.per_class)
    # Test photos go through the feature cache (the composed model computes the same); the
    # verdicts come from the model's rules, which alone compare scores with thresholds.
    features = split_features(test, views, cache, "held-out")
    probs = head_probabilities(classifier.artifact.head, features)
    scores, species = classifier.honesty_scores(features, probs.max(axis=1))
    verdicts = np.array(
        [
            rules.verdict(float(p.max()), float(score), side, float(known))
            for p, score, side, known in zip(probs, scores, short_sides(test), species, strict=True)
        ]
    )
    others = np.array([answer.verdict for answer in classifier.answers(non_flower_photos())])
    others_rejected = others == Verdict.NOT_A_FLOWER
    others_too_small = others == Verdict.TOO_SMALL
    flowers_rejected = verdicts == Verdict.NOT_A_FLOWER
    sure = verdicts == Verdict.SURE
    not_sure = verdicts == Verdict.NOT_SURE
    right = probs.argmax(axis=1) == test.labels

    print("| threshold (chosen at training time) | value |\n|---|---:|")
    print(f"| not a flower: flower score below | {rules.not_a_flower_below:.3f} |")
    print(f"| unknown species: species score below | {rules.unknown_species_below:.2f} |")
    print(f"| not sure: top-1 confidence below | {rules.unsure_below:.3f} |")
    print(f"| too small: short side below, px (bench/small_photos.py) | {rules.min_photo_side} |\n")
    print("| measured | value |\n|---|---:|")
    print(
        f"| non-flower photos rejected | {others_rejected.mean():.1%} "
        f"({others_rejected.sum()} of {len(others)}) |"
    )
    if others_too_small.any():
        print(f"| non-flower photos too small | {others_too_small.sum()} of {len(others)} |")
    print(
        f"| held-out flowers wrongly rejected | {flowers_rejected.mean():.1%} "
        f"({flowers_rejected.sum()} of {len(test)}) |"
    )
    print(f"| held-out answers flagged 'not sure' | {not_sure.mean():.1%} |")
    unknown = verdicts == Verdict.UNKNOWN_SPECIES
    print(f"| held-out answers flagged 'unknown species' | {unknown.mean():.1%} |")
    shown = (("sure", sure), ("'not sure'", not_sure), ("'unknown species'", unknown))
    for name, answered in shown:
        accuracy = f"{right[answered].mean():.1%}" if answered.any() else "- (none)"
        print(f"| top-1 accuracy of {name} answers | {accuracy} |")


if __name__ == "__main__":
    main()
