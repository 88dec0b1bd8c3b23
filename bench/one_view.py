"""The one-view answer (what the bot gives under overload) against the four-view one, on the
real-world measuring halves.

    python bench/one_view.py [--model DIR] [--data ../shared/data] [--cache-dir DIR] [--write]

The one-view cuts are the model folder's (metadata thresholds, model_training/one_view.py); a
folder without them gets them here from flower_photos' and nonflower's fitting halves, as
training computes them. Then on each measuring half, for
both answers: the share of photos called sure, sure and right, sure and wrong (a wrong species,
a species the model lacks such as tulips, or a non-flower), and how often the one-view answer
says something else than the four-view one (another verdict, or another species when both are
sure). The backbone features come from the feature cache (per view: the one-view features are
a column of the four-view ones). --write adds the cuts fitted here to the model folder (a copy
of the shipped one, say: the shipped folder gets its cuts from training).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model_training.abstention import ONE_VIEW_KEYS, Verdict, VerdictRules
from model_training.artifact import METADATA_FILE
from model_training.classifier import FlowerClassifier
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache
from model_training.one_view import (
    add_one_view_cuts,
    one_view_position,
    real_world_one_view_cuts,
    scores,
    sure_and_wrong,
    verdicts,
)
from model_training.realworld import UNKNOWN_CLASS, RealWorld, read_garden, read_realworld


def row(name: str, verdict: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> str:
    sure = verdict == Verdict.SURE
    right = sure & (probabilities.argmax(axis=1) == labels) & (labels != UNKNOWN_CLASS)
    wrong = sure_and_wrong(sure, probabilities, labels)
    return f"| {name} | {len(labels)} | {sure.mean():.1%} | {right.mean():.1%} | {wrong:.1%} |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--write", action="store_true", help="add the fitted cuts to --model")
    args = parser.parse_args(argv)
    classifier = FlowerClassifier.from_folder(args.model)
    model = classifier.model
    if model.honesty is None:
        print(f"{args.model} has no honesty model: no one-view cuts to measure", file=sys.stderr)
        return 1
    cache = FeatureCache(args.cache_dir, model.metadata.scaling)
    sets: dict[str, RealWorld] = {
        "flower_photos + nonflower": read_realworld(args.data),
        "garden_photos": read_garden(args.data),
    }
    features = {name: photos.features(model.views, cache) for name, photos in sets.items()}
    view = one_view_position(model.views)
    thresholds = model.metadata.thresholds
    if classifier.has_one_view:
        cuts = {key: thresholds[key] for key in ONE_VIEW_KEYS}
        print(f"one-view cuts: the model folder's ({model.metadata.version})")
    else:
        calibrating = sets["flower_photos + nonflower"].fitting_half()
        cuts = real_world_one_view_cuts(
            model.head, model.honesty, thresholds, model.views, calibrating, cache
        )
        print(f"one-view cuts: fitted here on the fitting halves ({model.metadata.version})")
        if args.write:
            add_one_view_cuts(args.model, cuts)
            print(f"written to {args.model / METADATA_FILE}")
    one_view_rules = VerdictRules.one_view({**thresholds, **cuts})
    assert one_view_rules is not None
    for key, value in cuts.items():
        print(f"  {key}: {value:.4g} (four views: {thresholds[ONE_VIEW_KEYS[key]]:.4g})")
    print()
    print("| measuring half, answer | photos | sure | sure and right | sure and wrong |")
    print("|---|---:|---:|---:|---:|")
    differ = []
    for name, photos in sets.items():
        measuring = ~photos.fitting
        x, labels = features[name][measuring], photos.oxford_class[measuring]
        four = scores(model.head, model.honesty, x)
        one = scores(model.head, model.honesty, x[:, view : view + 1])
        four_verdicts = verdicts(classifier.rules, *four)
        one_verdicts = verdicts(one_view_rules, *one)
        print(row(f"{name}, four views", four_verdicts, four[0], labels))
        print(row(f"{name}, one view", one_verdicts, one[0], labels))
        both_sure = (four_verdicts == Verdict.SURE) & (one_verdicts == Verdict.SURE)
        other_species = both_sure & (four[0].argmax(axis=1) != one[0].argmax(axis=1))
        differ.append((name, ((four_verdicts != one_verdicts) | other_species).mean()))
    for name, share in differ:
        print(f"\n{name}: the one-view answer says something else than the four-view one for")
        print(f"{share:.1%} of the photos (another verdict, or another species when both sure)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
