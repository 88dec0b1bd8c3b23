"""The coarser answer of an unsure verdict (model_training/taxonomy.py): how often it is given and
how often it is right, and the cut GROUP_ABOVE chosen on Oxford val.

    python bench/taxonomy.py [--model DIR] [--data ../shared/data] [--limit N]

1. Oxford val, answered by a head fitted as the shipped one but without val (the shipped head
   was refitted on val too; head_without_val): for each cut on the group's summed top-5
   confidence, the share of unsure answers ("not sure" or "unknown species") given a group and
   the share of those whose group holds the photo's true species. The cut chosen is the smallest
   from taxonomy.MIN_GROUP_ABOVE (a "probably" holds at least half the confidence) whose share
   right is at least taxonomy.GROUP_RIGHT_ON_VAL. (The honesty model, which decides
   "unknown species", is the shipped one, fitted with val: slightly kind to val.)
2. With the shipped cut: val (both heads) and the measuring halves of the real-world sets, with
   the shipped model, which never trained on them (garden_photos; flower_photos' known species,
   and its tulips, no Oxford species, whose group is right only as the family Liliaceae). The
   size rule is left out (bench/small_photos.py's). --limit N measures at most N photos of each
   real-world species (CI); the cut is always chosen on all of val.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np

from model_training.abstention import Verdict
from model_training.artifact import load_base_rows
from model_training.classifier import FlowerClassifier, SpeciesScore
from model_training.data import read_split
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache, split_features
from model_training.model import head_probabilities
from model_training.realworld import UNKNOWN_CLASS, read_garden, read_realworld
from model_training.taxonomy import (
    GROUP_ABOVE,
    GROUP_RIGHT_ON_VAL,
    MIN_GROUP_ABOVE,
    UNSURE,
    Group,
    Level,
    group_of,
    in_group,
)
from model_training.train import RowRecipe, fit_rows

CUTS = np.round(np.arange(0.0, 0.96, 0.05), 2)
TULIP_FAMILY = "Liliaceae"  # Tulipa's family (APG IV)


@dataclass(frozen=True)
class Photos:
    name: str
    top5: list[list[SpeciesScore]]
    verdicts: list[Verdict]
    truth: list[str | None]  # the true species' class name; None: no Oxford species (tulips)


def answered(
    classifier: FlowerClassifier,
    name: str,
    features: np.ndarray,
    truth: list[str | None],
    head: keras.Model | None = None,
) -> Photos:
    """Photos' (photos, views, 1280) features -> their top-5 and verdicts, by `head` (default:
    the shipped one) and the shipped rules."""
    probabilities = head_probabilities(head or classifier.artifact.head, features)
    flower, species = classifier.honesty_scores(features, probabilities.max(axis=1))
    verdicts = [
        classifier.rules.verdict(float(p.max()), float(f), 10**6, float(s))
        for p, f, s in zip(probabilities, flower, species, strict=True)
    ]
    return Photos(name, [classifier.top_k_of(p) for p in probabilities], verdicts, truth)


def head_without_val(
    classifier: FlowerClassifier, model: Path, labels: np.ndarray, x: np.ndarray
) -> keras.Model:
    """The shipped head was refitted on train + val + test (less the base held-out set), so on
    val it is sure of nearly everything. The head its unsure cut was chosen with never saw val:
    this one is fitted as the shipped one (its recipe and epoch count) on its base rows less
    val's, which model_training/workflow.py puts after the fitting rows and before the
    real-world ones (found here by val's labels and features)."""
    base = load_base_rows(model)
    n, means = len(labels), x.mean(axis=1)
    starts = np.flatnonzero(base.train_y[: len(base.train_y) - n + 1] == labels[0])
    start = next(
        (
            s
            for s in starts
            if np.array_equal(base.train_y[s : s + n], labels)
            and np.allclose(base.train_x[s : s + n].astype(np.float32), means, atol=0.01)
        ),
        None,
    )
    if start is None:
        raise SystemExit(f"{model}/base.npz does not hold val's rows")
    keep = np.ones(len(base.train_y), bool)
    keep[start : start + n] = False
    metadata = classifier.artifact.metadata
    recipe = RowRecipe.recorded(metadata.recipe, metadata.serve_views)
    weights = None if base.train_w is None else base.train_w[keep]
    rows = (base.train_x[keep].astype(np.float32), base.train_y[keep], weights)
    head, _ = fit_rows(len(classifier.class_names), rows, recipe, metadata.recipe["epochs"])
    return head


def right(group: Group, truth: str | None) -> bool:
    if truth is None:
        return group.level == Level.FAMILY and group.name == TULIP_FAMILY
    return in_group(group, truth)


def row(photos: Photos, cut: float) -> tuple[int, int, int, int, int, int]:
    """(photos, unsure, given a group, group right, species the groups name, groups that name
    the true species)."""
    pairs = zip(photos.top5, photos.verdicts, strict=True)
    found = [group_of(top5, verdict, above=cut) for top5, verdict in pairs]
    given = [(g, t) for g, t in zip(found, photos.truth, strict=True) if g is not None]
    unsure = sum(v in UNSURE for v in photos.verdicts)
    correct = sum(right(g, t) for g, t in given)
    named = sum(len(g.species) for g, _ in given)
    return (
        len(photos.verdicts),
        unsure,
        len(given),
        correct,
        named,
        sum(t in g.species for g, t in given),
    )


def share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def choose_cut(val: Photos) -> float:
    print(f"{val.name}, by cut:\n")
    print("| cut | unsure | unsure given a group | group right |")
    print("|---:|---:|---:|---:|")
    chosen = None
    for cut in CUTS:
        _, unsure, given, correct, _, _ = row(val, float(cut))
        print(f"| {cut:.2f} | {unsure} | {share(given, unsure)} | {share(correct, given)} |")
        if cut < MIN_GROUP_ABOVE or chosen is not None or not given:
            continue
        if correct / given >= GROUP_RIGHT_ON_VAL:
            chosen = float(cut)
    print(
        f"\nsmallest cut from {MIN_GROUP_ABOVE} with at least {GROUP_RIGHT_ON_VAL:.0%} right on "
        f"val: {chosen}"
    )
    print(f"shipped cut (taxonomy.GROUP_ABOVE): {GROUP_ABOVE}\n")
    return GROUP_ABOVE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--limit", type=int, help="at most this many photos a real-world species")
    args = parser.parse_args()
    classifier = FlowerClassifier.from_folder(args.model)
    cache = FeatureCache(args.cache_dir, classifier.artifact.metadata.scaling)
    views = tuple(classifier.artifact.metadata.serve_views)
    names = classifier.class_names

    oxford = read_split(args.data / "oxford102-224", "val", names)
    x = split_features(oxford, views, cache, "val")
    truth = [names[int(label)] for label in oxford.labels]
    head = head_without_val(classifier, args.model, oxford.labels, x)
    val = answered(classifier, "Oxford val (a head fitted without val)", x, truth, head)
    sets = [val, answered(classifier, "Oxford val (shipped head, trained on val)", x, truth)]
    # The measuring halves only: the fitting halves trained the shipped model.
    garden = read_garden(args.data).measuring_half(args.limit)
    flowers = read_realworld(args.data).measuring_half(args.limit)
    known = flowers.oxford_class != UNKNOWN_CLASS
    for label, photos in (
        ("garden_photos", garden),
        ("flower_photos known species", flowers.subset(known)),
        ("flower_photos tulips", flowers.subset(flowers.folders == "tulips")),
    ):
        truth = [names[c] if c != UNKNOWN_CLASS else None for c in photos.oxford_class]
        features = photos.features(views, cache)
        sets.append(answered(classifier, f"{label} (measure)", features, truth))

    cut = choose_cut(val)
    print(f"With the shipped cut {cut}:")
    print(
        "| set | photos | unsure | unsure given a group | group right | species named a group "
        "| true species named |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for photos in sets:
        n, unsure, given, correct, named, true_named = row(photos, cut)
        print(
            f"| {photos.name} | {n} | {unsure} | {share(given, unsure)} ({given}) "
            f"| {share(correct, given)} ({correct}) | {named / given if given else 0:.2f} "
            f"| {share(true_named, given)} ({true_named}) |"
        )


if __name__ == "__main__":
    main()
