"""Measure the bot's two honesty thresholds: "not sure" and "not a flower".

    python bench/thresholds.py [--model models/oxford102] [--data ../shared/data/oxford102-224]

The thresholds were chosen on val when the model was trained (model_training/abstention.py);
here they are measured on test (flowers the model never trained on) and on real non-flower
photos that ship with scikit-image, scikit-learn and matplotlib (people, animals, objects,
textures, text, space).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import matplotlib
import numpy as np
import skimage
import sklearn

from model_training.classifier import FlowerClassifier
from model_training.data import read_split
from model_training.features import FeatureCache
from model_training.model import head_probabilities
from model_training.photos import load_photo_file
from model_training.workflow import split_features

# Photos that are not flowers; "grass" and the like are fair game: the bot must not name a species.
NON_FLOWER_FILES = [
    *sorted(Path(skimage.data.__file__).parent.glob("*.png")),
    *sorted(Path(skimage.data.__file__).parent.glob("*.jpg")),
    Path(sklearn.datasets.__file__).parent / "images" / "china.jpg",
    Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
]


def non_flower_images() -> np.ndarray:
    images = []
    for path in NON_FLOWER_FILES:
        try:
            images.append(load_photo_file(path))
        except Exception:  # a few scikit-image files are masks or 16-bit scans; skip them
            continue
    return np.stack(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/oxford102"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/oxford102-224"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/features"))
    args = parser.parse_args()

    classifier = FlowerClassifier.from_folder(args.model)
    views = tuple(classifier.artifact.metadata.serve_views)
    cache = FeatureCache(args.cache_dir, classifier.artifact.metadata.scaling)
    test = read_split(args.data, "test")
    features = split_features(test, views, cache, "test")
    probs = head_probabilities(classifier.artifact.head, features)
    flowers_kept = classifier.flower_scores(features) >= classifier.not_a_flower_below
    _, other_features = classifier.classify(non_flower_images())
    others_rejected = classifier.flower_scores(other_features) < classifier.not_a_flower_below
    sure = probs.max(axis=1) >= classifier.unsure_below
    right = probs.argmax(axis=1) == test.labels

    print("| threshold (chosen on val at training time) | value |\n|---|---:|")
    print(
        f"| not a flower: cosine to nearest species below | {classifier.not_a_flower_below:.3f} |"
    )
    print(f"| not sure: top-1 confidence below | {classifier.unsure_below:.3f} |\n")
    print("| measured | value |\n|---|---:|")
    print(
        f"| non-flower photos rejected | {others_rejected.mean():.1%} "
        f"({others_rejected.sum()} of {len(others_rejected)}) |"
    )
    print(
        f"| test flowers wrongly rejected | {1 - flowers_kept.mean():.1%} "
        f"({(~flowers_kept).sum()} of {len(test)}) |"
    )
    print(f"| test answers flagged 'not sure' | {1 - sure.mean():.1%} |")
    print(f"| top-1 accuracy of sure answers | {right[sure].mean():.1%} |")
    print(f"| top-1 accuracy of 'not sure' answers | {right[~sure].mean():.1%} |")


if __name__ == "__main__":
    main()
