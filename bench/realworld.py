"""What the bot answers to real-world photos, and to species it was never trained on.

    python bench/realworld.py [--model DIR] [--data ../shared/data] [--folds 5] [--inner-folds 5]
                              [--no-leave-out] [--limit N]

0. The model's verdicts on the base held-out set (known species, never trained on).
1. The measuring halves of `garden_photos`, `flower_photos` (per folder; tulips are no Oxford
   species), `nonflower` and `unknown_photos` (astilbe, no Oxford species): the share of each
   verdict and, for known species, top-1; where the confident wrong names go (the species with
   real-world training rows, and Oxford's look-alikes).
2. Species left out of the whole recipe: FOLDS folds of species drawn at random (each with one
   species that has real-world rows, left out with them), the product recipe run without each
   fold, its cuts chosen by the honesty goals on its own inner folds; its verdicts on every photo
   of the left-out species and on the known species' base held-out photos. Mean and worst fold.
   About 7 head fits a fold (about 15 minutes for 5 folds on 2 cores).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np

from model_training.abstention import Verdict, VerdictRules
from model_training.artifact import load_base_rows
from model_training.classifier import FlowerClassifier
from model_training.cuts import (
    LEAVE_OUT_FOLDS,
    LEAVE_OUT_SEED,
    LEAVE_OUT_SPECIES,
    choose_cuts,
    leave_out_folds,
)
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache
from model_training.honesty import HonestyModel
from model_training.model import head_probabilities
from model_training.realworld import (
    NONFLOWER_FOLDER,
    UNKNOWN_CLASS,
    UNKNOWN_PHOTOS,
    RealWorld,
    read_garden,
    read_realworld,
    read_unknown,
)
from model_training.train import RowRecipe
from model_training.workflow import fit_honesty, fit_product, honesty_evidence, product_rows

COLUMNS = [Verdict.NOT_A_FLOWER, Verdict.UNKNOWN_SPECIES, Verdict.NOT_SURE, Verdict.SURE]
# Not the product's own seed (cuts.LEAVE_OUT_SEED): other species than those its cuts saw left out.
REPORT_SEED = 1
# Oxford look-alikes of species with real-world rows: (photographed, answered "sure" instead).
LOOK_ALIKES = (("corn poppy", "californian poppy"), ("lotus lotus", "water lily"))


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


@dataclass(frozen=True)
class SetScores:
    """A real-world set's measuring half as the model answers it (known species only for the
    accuracy columns)."""

    folders: np.ndarray
    oxford_class: np.ndarray
    probabilities: np.ndarray
    verdicts: np.ndarray

    def row(self, name: str, rows: np.ndarray) -> str:
        verdicts, known = self.verdicts[rows], self.oxford_class[rows] != UNKNOWN_CLASS
        shares = " | ".join(f"{(verdicts == v).mean():.1%}" for v in COLUMNS)
        if not known.all():
            return f"| {name} | {rows.sum()} | {shares} | | | | |"
        ranks = np.argsort(-self.probabilities[rows], axis=1)[:, :5]
        right = ranks[:, 0] == self.oxford_class[rows]
        top5 = (ranks == self.oxford_class[rows][:, None]).any(axis=1)
        sure = verdicts == Verdict.SURE
        return (
            f"| {name} | {rows.sum()} | {shares} | {right.mean():.1%} | {top5.mean():.1%} "
            f"| {(sure & right).mean():.1%} | {(sure & ~right).mean():.1%} |"
        )

    def table(self, title: str) -> None:
        print(f"\n{title}, measuring half\n")
        print(
            "| photos | n | not a flower | unknown species | not sure | sure "
            "| top-1 | top-5 | sure and right | sure and wrong |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for folder in sorted(set(self.folders)):
            print(self.row(folder, self.folders == folder))
        known = self.oxford_class != UNKNOWN_CLASS
        if known.any() and not known.all():
            print(self.row("**known species**", known))
        elif known.all():
            print(self.row("**all**", known))


def measure_half(
    classifier: FlowerClassifier, photos: RealWorld, cache: FeatureCache, limit: int | None
) -> SetScores:
    """The measuring half (at most `limit` photos per folder, for a quick run)."""
    measured = photos.measuring_half(limit)
    features = measured.features(tuple(classifier.artifact.metadata.serve_views), cache)
    probabilities = head_probabilities(classifier.artifact.head, features)
    flower, species = classifier.honesty_scores(features, probabilities.max(axis=1))
    verdicts = verdicts_of(classifier.rules, probabilities, flower, species)
    return SetScores(measured.folders, measured.oxford_class, probabilities, verdicts)


def realworld_tables(
    classifier: FlowerClassifier,
    folder: Path,
    data: Path,
    cache: FeatureCache,
    limit: int | None = None,
) -> None:
    garden = measure_half(classifier, read_garden(data), cache, limit)
    garden.table("garden_photos (8 known species)")
    others = measure_half(classifier, read_realworld(data), cache, limit)
    others.table("flower_photos (4 known species and tulips) and nonflower")
    flowers = others.folders != NONFLOWER_FOLDER
    not_flower = (others.verdicts[flowers] == Verdict.NOT_A_FLOWER).mean()
    rejected = (others.verdicts[~flowers] == Verdict.NOT_A_FLOWER).mean()
    print(f"\nreal-world flowers called 'not a flower': {not_flower:.1%} (goal at most 5%)")
    print(f"non-flower photos rejected: {rejected:.1%} (goal at least 95%)")
    tulips = others.verdicts[others.folders == "tulips"]
    print(f"tulips named with a 'sure' species: {(tulips == Verdict.SURE).mean():.1%}")
    if (data / UNKNOWN_PHOTOS).is_dir():
        astilbe = measure_half(classifier, read_unknown(data), cache, limit).verdicts
        print(
            f"astilbe (unknown_photos) named with a 'sure' species: "
            f"{(astilbe == Verdict.SURE).mean():.1%} of {len(astilbe)}"
        )
    pull(classifier, folder, others, np.unique(read_garden(data).oxford_class))


def pull(
    classifier: FlowerClassifier, folder: Path, others: SetScores, with_rows: np.ndarray
) -> None:
    """Where the confident wrong names go: to the species with real-world training rows? And
    Oxford's look-alikes of two of them, on the base held-out photos."""
    known = others.oxford_class != UNKNOWN_CLASS
    named = others.probabilities.argmax(axis=1)
    wrong = known & (others.verdicts == Verdict.SURE) & (named != others.oxford_class)
    print(
        f"flower_photos' sure and wrong answers naming a species with real-world rows: "
        f"{np.isin(named[wrong], with_rows).sum()} of {wrong.sum()}"
    )
    names = classifier.artifact.class_names
    base = load_base_rows(folder)
    features = base.heldout_x.astype(np.float32)
    probabilities = head_probabilities(classifier.artifact.head, features)
    flower, species = classifier.honesty_scores(features, probabilities.max(axis=1))
    verdicts = verdicts_of(classifier.rules, probabilities, flower, species)
    for photographed, instead in LOOK_ALIKES:
        these = base.heldout_y == names.index(photographed)
        taken = (
            these
            & (verdicts == Verdict.SURE)
            & (probabilities.argmax(axis=1) == names.index(instead))
        )
        taken, these = int(taken.sum()), int(these.sum())
        print(f"base held-out {photographed} answered 'sure' {instead}: {taken} of {these}")
    print()


def shipped_heldout(classifier: FlowerClassifier, folder: Path) -> None:
    """The model's own verdicts on the base held-out set (its base.npz): known species."""
    base = load_base_rows(folder)
    features = base.heldout_x.astype(np.float32)
    probabilities = head_probabilities(classifier.artifact.head, features)
    flower, species = classifier.honesty_scores(features, probabilities.max(axis=1))
    verdicts = verdicts_of(classifier.rules, probabilities, flower, species)
    right = probabilities.argmax(axis=1) == base.heldout_y
    sure = verdicts == Verdict.SURE
    print("| photos | n | not a flower | unknown species | not sure | sure | top-1 of sure |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(share_row("base held-out (known species)", verdicts, f"{right[sure].mean():.1%}"))
    print()


def answered(
    head: keras.Model, honesty: HonestyModel, rules: VerdictRules, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(verdicts, probabilities) of a head and honesty model other than the shipped ones."""
    probabilities = head_probabilities(head, features)
    species = honesty.species_scores(features, probabilities.max(axis=1))
    flower = honesty.flower_scores(features)
    return verdicts_of(rules, probabilities, flower, species), probabilities


def leave_species_out(
    classifier: FlowerClassifier, data: Path, cache: FeatureCache, folds: int, inner: int
) -> None:
    """The whole product recipe (model_training/workflow.py: head, species space, and the cuts
    chosen by the honesty goals on its own inner leave-out folds) run without each fold's species
    and their real-world rows; then its verdicts on every photo of them, and on the base
    held-out photos of the species it knows."""
    metadata = classifier.artifact.metadata
    recipe = RowRecipe.recorded(metadata.recipe, metadata.serve_views)
    rows, splits, _ = product_rows(data / "oxford102-224", recipe, cache, None, data)
    names = splits["train"].class_names
    garden = read_garden(data)
    garden_x = garden.features(tuple(recipe.serve_views), cache)
    with_rows = np.unique(rows.realworld_calibration.y)
    drawn = leave_out_folds(len(names), with_rows, folds, seed=REPORT_SEED)
    print(
        f"\nSpecies left out of the whole recipe, {folds} folds of {LEAVE_OUT_SPECIES} (seed "
        f"{REPORT_SEED}; the product's own folds for its cuts use seed {LEAVE_OUT_SEED}), each "
        f"with its cuts chosen on {inner} inner folds:\n"
    )
    print(
        "| fold | left out | cuts (not sure, unknown share), goals met | known sure "
        "| right of sure | left-out sure | of them naming a species with real-world rows |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    shares = []
    for k, species in enumerate(drawn):
        known = rows.without(species)
        n_known = len(names) - len(species)
        fitted = fit_product(known, n_known, recipe)
        real = (cache, tuple(recipe.serve_views), data)
        honesty, thresholds = fit_honesty(known, n_known, real)
        assert honesty is not None, "the leave-out run needs the real-world photos"
        evidence = honesty_evidence(known, fitted, n_known, recipe, 0, real, inner)
        choice = choose_cuts(evidence)
        rules = VerdictRules.from_thresholds(
            {
                **thresholds,
                "unsure_below": choice.unsure_below,
                "unknown_species_below": choice.unknown_species_below,
            }
        )

        served = (fitted.head, honesty, rules)
        known_verdicts, p = answered(*served, known.heldout.x)
        right = p.argmax(axis=1) == known.heldout.y
        sure = known_verdicts == Verdict.SURE
        gone_x = np.concatenate(
            [
                rows.everything.x[np.isin(rows.everything.y, species)],
                rows.heldout.x[np.isin(rows.heldout.y, species)],
                garden_x[np.isin(garden.oxford_class, species) & ~garden.fitting],
            ]
        )
        gone_verdicts, gone_p = answered(*served, gone_x)
        gone_sure = gone_verdicts == Verdict.SURE
        # Which known species the confident wrong names go to: those with real-world rows?
        index = np.setdiff1d(np.arange(len(names)), species)
        pulled = np.isin(index[gone_p.argmax(axis=1)], with_rows)
        shares.append(gone_sure.mean())
        pull = (gone_sure & pulled).sum() / max(gone_sure.sum(), 1)
        print(
            f"| {k + 1} | {', '.join(names[i] for i in species)} "
            f"| {choice.unsure_below:.2f}, {choice.unknown_share:.0%}, "
            f"{'yes' if choice.goals_met else 'no'} | {sure.mean():.1%} "
            f"| {right[sure].mean():.1%} | {gone_sure.mean():.1%} ({len(gone_sure)}) "
            f"| {pull:.0%} |"
        )
    print(
        f"\nleft-out species answered 'sure': mean {np.mean(shares):.1%} (goal at most 8%), "
        f"worst fold {np.max(shares):.1%} (goal at most 10%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--folds", type=int, default=LEAVE_OUT_FOLDS, help="leave-out folds")
    parser.add_argument(
        "--inner-folds", type=int, default=LEAVE_OUT_FOLDS, help="each fold's own cut folds"
    )
    parser.add_argument("--no-leave-out", action="store_true", help="only the real-world tables")
    parser.add_argument("--limit", type=int, help="at most this many photos per folder (CI)")
    args = parser.parse_args()
    classifier = FlowerClassifier.from_folder(args.model)
    cache = FeatureCache(args.cache_dir, classifier.artifact.metadata.scaling)
    shipped_heldout(classifier, args.model)
    realworld_tables(classifier, args.model, args.data, cache, args.limit)
    if not args.no_leave_out:
        leave_species_out(classifier, args.data, cache, args.folds, args.inner_folds)


if __name__ == "__main__":
    main()
