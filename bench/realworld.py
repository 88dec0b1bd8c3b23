"""What the bot answers to real-world photos, and to species it was never trained on.

    python bench/realworld.py [--model DIR] [--data ../shared/data] [--leave-out N] [--no-leave-out]

0. The model's verdicts on the base held-out set (known species, never trained on).
1. The measuring halves of `flower_photos` (per folder; tulips are no Oxford species) and of
   `nonflower` (model_training/realworld.py: the fitting halves calibrated "not a flower" and are
   never counted here): the share of each verdict and, for the four known species, top-1.
2. Species left out of a training run: a head and the honesty model are fitted as the product
   recipe does (fitting rows, the shipped number of epochs, cuts on val) but without N species
   drawn with a fixed seed; then its verdicts on the base held-out photos of the known species
   and on the val and base held-out photos of the left-out ones (never trained on).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np

from model_training.abstention import Verdict, VerdictRules, unsure_cut
from model_training.artifact import load_base_rows
from model_training.classifier import FlowerClassifier
from model_training.cli import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.data import read_split
from model_training.features import FeatureCache, split_features
from model_training.heldout import heldout_ids
from model_training.honesty import fit_species_space, unknown_species_cut
from model_training.model import head_probabilities
from model_training.realworld import UNKNOWN_CLASS, read_realworld
from model_training.train import RowRecipe, fit_rows

COLUMNS = [Verdict.NOT_A_FLOWER, Verdict.UNKNOWN_SPECIES, Verdict.NOT_SURE, Verdict.SURE]
LEAVE_OUT_SEED = 0


def verdicts_of(
    rules: VerdictRules, probabilities: np.ndarray, flower: np.ndarray, species: np.ndarray
) -> np.ndarray:
    """Every photo here is large enough (the size rule is bench/small_photos.py's)."""
    return np.array(
        [
            rules.verdict(float(p.max()), float(f), 10**6, float(s))
            for p, f, s in zip(probabilities, flower, species, strict=True)
        ]
    )


def share_row(name: str, verdicts: np.ndarray, top1: str = "") -> str:
    shares = " | ".join(f"{(verdicts == v).mean():.1%}" for v in COLUMNS)
    return f"| {name} | {len(verdicts)} | {shares} | {top1} |"


def realworld_table(classifier: FlowerClassifier, data: Path, cache: FeatureCache) -> None:
    photos = read_realworld(data)
    views = tuple(classifier.artifact.metadata.serve_views)
    measure = ~photos.fitting
    features = photos.features(views, cache)[measure]
    probabilities = head_probabilities(classifier.artifact.head, features)
    flower, species = classifier.honesty_scores(features)
    verdicts = verdicts_of(classifier.rules, probabilities, flower, species)
    folders, classes = photos.folders[measure], photos.oxford_class[measure]
    print("| measuring half | photos | not a flower | unknown species | not sure | sure | top-1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for folder in sorted(set(folders)):
        rows = folders == folder
        known = classes[rows] != UNKNOWN_CLASS
        top1 = ""
        if known.all():
            right = probabilities[rows].argmax(axis=1) == classes[rows]
            top1 = f"{right.mean():.1%}"
        print(share_row(folder, verdicts[rows], top1))
    flowers = photos.is_flower[measure]
    print(share_row("all flowers", verdicts[flowers]))
    not_flower = (verdicts[flowers] == Verdict.NOT_A_FLOWER).mean()
    rejected = (verdicts[~flowers] == Verdict.NOT_A_FLOWER).mean()
    print(f"\nreal-world flowers called 'not a flower': {not_flower:.1%} (goal at most 5%)")
    print(f"non-flower photos rejected: {rejected:.1%} (goal at least 95%)")
    tulips = verdicts[folders == "tulips"]
    print(f"tulips named with a 'sure' species: {(tulips == Verdict.SURE).mean():.1%}\n")


def shipped_heldout(classifier: FlowerClassifier, folder: Path) -> None:
    """The model's own verdicts on the base held-out set (its base.npz): known species."""
    base = load_base_rows(folder)
    features = base.heldout_x.astype(np.float32)
    probabilities = head_probabilities(classifier.artifact.head, features)
    flower, species = classifier.honesty_scores(features)
    verdicts = verdicts_of(classifier.rules, probabilities, flower, species)
    right = probabilities.argmax(axis=1) == base.heldout_y
    sure = verdicts == Verdict.SURE
    print("| photos | n | not a flower | unknown species | not sure | sure | top-1 of sure |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(share_row("base held-out (known species)", verdicts, f"{right[sure].mean():.1%}"))
    print()


def leave_species_out(
    classifier: FlowerClassifier, oxford: Path, cache: FeatureCache, n_out: int
) -> None:
    metadata = classifier.artifact.metadata
    views = tuple(metadata.serve_views)
    splits = {s: read_split(oxford, s) for s in ("train", "val", "test")}
    x = {s: split_features(p, views, cache, s) for s, p in splits.items()}
    y = {s: p.labels for s, p in splits.items()}
    held = np.isin(splits["test"].ids, list(heldout_ids()))
    n_classes = len(splits["train"].class_names)
    left_out = np.sort(np.random.default_rng(LEAVE_OUT_SEED).choice(n_classes, n_out, False))
    known = np.setdiff1d(np.arange(n_classes), left_out)
    index = np.full(n_classes, -1)
    index[known] = np.arange(len(known))
    fit_x = np.concatenate([x["train"], x["test"][~held]])
    fit_y = np.concatenate([y["train"], y["test"][~held]])
    keep = np.isin(fit_y, known)
    fit_x, fit_y = fit_x[keep], index[fit_y[keep]]
    head, _ = fit_rows(
        len(known), (fit_x.mean(axis=1), fit_y, None), RowRecipe(), metadata.recipe["epochs"]
    )
    space = fit_species_space(fit_x.mean(axis=1), fit_y, len(known))
    val_known = np.isin(y["val"], known)
    val_probabilities = head_probabilities(head, x["val"][val_known])
    unsure_below = unsure_cut(val_probabilities, index[y["val"][val_known]])
    rules = VerdictRules.from_thresholds(
        {
            **metadata.thresholds,
            "unsure_below": unsure_below,
            "unknown_species_below": unknown_species_cut(
                space.scores(x["val"][val_known].mean(axis=1)),
                val_probabilities.max(axis=1) >= unsure_below,
            ),
        }
    )

    def verdicts(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = head_probabilities(head, features)
        flower, _ = classifier.honesty_scores(features)
        species = space.scores(features.mean(axis=1))
        return verdicts_of(rules, probabilities, flower, species), probabilities

    held_x, held_y = x["test"][held], y["test"][held]
    known_rows = np.isin(held_y, known)
    known_verdicts, probabilities = verdicts(held_x[known_rows])
    right = probabilities.argmax(axis=1) == index[held_y[known_rows]]
    unknown_x = np.concatenate([x["val"][~val_known], held_x[~known_rows]])
    unknown_verdicts, _ = verdicts(unknown_x)
    sure = known_verdicts == Verdict.SURE
    names = [splits["train"].class_names[k] for k in left_out]
    print(f"left out ({n_out}, seed {LEAVE_OUT_SEED}): {', '.join(names)}")
    print(
        f"cuts chosen on val: unsure below {rules.unsure_below:.3f}, "
        f"unknown species below {rules.unknown_species_below:.2f}\n"
    )
    print("| photos | n | not a flower | unknown species | not sure | sure | top-1 of sure |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(share_row("known species, base held-out", known_verdicts, f"{right[sure].mean():.1%}"))
    print(share_row("left-out species (val + held-out)", unknown_verdicts))
    trade_off(rules.unsure_below, (probabilities, known_verdicts, right), verdicts(unknown_x))


def trade_off(
    unsure_below: float,
    known: tuple[np.ndarray, np.ndarray, np.ndarray],
    unknown: tuple[np.ndarray, np.ndarray],
) -> None:
    """The same run with higher 'not sure' cuts: what fewer confident unknowns cost the known.
    known: (probabilities, verdicts, right); unknown: (verdicts, probabilities)."""
    known_probabilities, known_verdicts, right = known
    unknown_verdicts, unknown_probabilities = unknown
    print("\n| 'not sure' below | known sure | right of sure | left-out species sure |")
    print("|---:|---:|---:|---:|")
    for cut in (unsure_below, 0.7, 0.8, 0.9, 0.95):
        sure = (known_verdicts == Verdict.SURE) & (known_probabilities.max(axis=1) >= cut)
        unknown_sure = (unknown_verdicts == Verdict.SURE) & (
            unknown_probabilities.max(axis=1) >= cut
        )
        print(
            f"| {cut:.3f} | {sure.mean():.1%} | {right[sure].mean():.1%} "
            f"| {unknown_sure.mean():.1%} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--leave-out", type=int, default=10, help="species left out of training")
    parser.add_argument("--no-leave-out", action="store_true", help="only the real-world table")
    args = parser.parse_args()
    classifier = FlowerClassifier.from_folder(args.model)
    cache = FeatureCache(args.cache_dir, classifier.artifact.metadata.scaling)
    shipped_heldout(classifier, args.model)
    realworld_table(classifier, args.data, cache)
    if not args.no_leave_out:
        leave_species_out(classifier, args.data / "oxford102-224", cache, args.leave_out)


if __name__ == "__main__":
    main()
