"""What the bot answers to real-world photos, and to species it was never trained on.

    python bench/realworld.py [--model DIR] [--data ../shared/data] [--leave-out N] [--no-leave-out]

0. The model's verdicts on the base held-out set (known species, never trained on).
1. The measuring halves of `flower_photos` (per folder; tulips are no Oxford species) and of
   `nonflower` (model_training/realworld.py: the fitting halves calibrated "not a flower" and are
   never counted here): the share of each verdict and, for the four known species, top-1.
2. Species left out of a training run: a head and the honesty model are fitted as the product
   recipe does (fitting rows, the shipped number of epochs, cuts on val) but without N species
   drawn with a fixed seed; then its verdicts on the base held-out photos of the known species
   and on the val and base held-out photos of the left-out ones (never trained on); then the
   unknown-species scores tried (CANDIDATES) on the same run, each cut on val.
3. With --simulate: the same candidates on species left out of the *fitting rows* (outlier
   exposure style: the leave-out run's known species in SIMULATED_FOLDS folds, a head and a
   species space fitted per fold without its species, known = val photos of the other species,
   unknown = every photo of the fold's species). Chosen here, never on the left-out species of
   step 2 (which a run of ~4 more head fits, ~4 min, does not touch).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np

from model_training.abstention import Verdict, VerdictRules, unsure_cut
from model_training.artifact import load_base_rows
from model_training.classifier import FlowerClassifier
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache
from model_training.honesty import SpeciesSpace, fit_species_space, unknown_species_cut
from model_training.model import head_probabilities
from model_training.realworld import (
    NONFLOWER_FOLDER,
    UNKNOWN_CLASS,
    RealWorld,
    read_garden,
    read_realworld,
)
from model_training.train import RowRecipe, fit_rows
from model_training.workflow import calibrated_species_cut, mean_rows, product_rows

COLUMNS = [Verdict.NOT_A_FLOWER, Verdict.UNKNOWN_SPECIES, Verdict.NOT_SURE, Verdict.SURE]
LEAVE_OUT_SEED = 0
SIMULATED_FOLDS = 4
# Shares of val's known photos kept 'sure' by the unknown-species cut (honesty.KNOWN_SURE_ON_VAL).
KEEP_ON_VAL = (0.80, 0.78)


def relative(space: SpeciesSpace, rows: np.ndarray, p: np.ndarray, weight: float) -> np.ndarray:
    """The space's relative distance plus `weight` x the log of the top-1 confidence."""
    return replace(space, confidence_weight=weight).scores(rows, p.max(axis=1))


# Unknown-species scores tried: (root-normalised space, raw space, mean rows, head
# probabilities) -> higher: more known.
CANDIDATES = {
    "root-normalised, relative + 50 x log top-1 confidence (shipped)": lambda root, raw, x, p: (
        root.scores(x, p.max(axis=1))
    ),
    "root-normalised, relative": lambda root, raw, x, p: relative(root, x, p, 0.0),
    "raw, relative (the rule before)": lambda root, raw, x, p: relative(raw, x, p, 0.0),
    "raw, relative + 50 x log top-1 confidence": lambda root, raw, x, p: relative(raw, x, p, 50.0),
    "raw, plain Mahalanobis": lambda root, raw, x, p: -raw.squared_distances(x).min(axis=1),
}


def candidate_rows(
    spaces: tuple[SpeciesSpace, SpeciesSpace],
    unsure_below: float,
    val: tuple[np.ndarray, np.ndarray],
    known: tuple[np.ndarray, np.ndarray, np.ndarray],
    unknown: tuple[np.ndarray, np.ndarray],
) -> list[tuple[str, float, float, float, float]]:
    """Each candidate (spaces: fitted on root-normalised and on raw rows), cut on val's known
    photos (mean rows, probabilities) to keep each share of KEEP_ON_VAL sure -> (candidate, share,
    known sure, right of sure, unknown sure). known: (rows, probabilities, right); unknown: (rows,
    probabilities). The flower rule is left out (it rejects 0.0-0.1% of these Oxford photos)."""
    rows = []
    for name, score in CANDIDATES.items():
        val_scores = score(*spaces, *val)
        known_scores, unknown_scores = score(*spaces, *known[:2]), score(*spaces, *unknown)
        for keep in KEEP_ON_VAL:
            cut = unknown_species_cut(val_scores, val[1].max(axis=1) >= unsure_below, keep)
            sure = (known_scores >= cut) & (known[1].max(axis=1) >= unsure_below)
            unknown_sure = (unknown_scores >= cut) & (unknown[1].max(axis=1) >= unsure_below)
            right = known[2][sure].mean() if sure.any() else float("nan")
            rows.append((name, keep, sure.mean(), right, unknown_sure.mean()))
    return rows


def print_candidates(title: str, rows: list[tuple[str, float, float, float, float]]) -> None:
    print(f"\n| score ({title}) | val kept sure | known sure | right of sure | unknown sure |")
    print("|---|---:|---:|---:|---:|")
    for name, keep, sure, right, unknown in rows:
        print(f"| {name} | {keep:.0%} | {sure:.1%} | {right:.1%} | {unknown:.1%} |")


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
    classifier: FlowerClassifier, data: Path, cache: FeatureCache, limit: int | None = None
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
    print(f"tulips named with a 'sure' species: {(tulips == Verdict.SURE).mean():.1%}\n")


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


def leave_species_out(
    classifier: FlowerClassifier, data: Path, cache: FeatureCache, n_out: int, simulate: bool
) -> None:
    """The product's rows and cuts (model_training/workflow.py) without N species."""
    metadata = classifier.artifact.metadata
    recipe = RowRecipe.recorded(metadata.recipe, metadata.serve_views)
    rows, splits, _ = product_rows(data / "oxford102-224", recipe, cache, None, data)
    n_classes = len(splits["train"].class_names)
    left_out = np.sort(np.random.default_rng(LEAVE_OUT_SEED).choice(n_classes, n_out, False))
    known = rows.without(left_out)
    head, _ = fit_rows(n_classes - n_out, known.fit.means(), recipe, metadata.recipe["epochs"])
    calibration_probabilities = head_probabilities(head, known.calibration.x)
    unsure_below = unsure_cut(calibration_probabilities, known.calibration.y)
    confidences = calibration_probabilities.max(axis=1)
    rules = VerdictRules.from_thresholds(
        {
            **metadata.thresholds,
            "unsure_below": unsure_below,
            "unknown_species_below": calibrated_species_cut(
                known, confidences, unsure_below, n_classes - n_out
            ),
        }
    )
    space = fit_species_space(*known.fit.means()[:2], n_classes - n_out)
    raw_space = fit_species_space(*known.fit.means()[:2], n_classes - n_out, root=False)

    def verdicts(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = head_probabilities(head, features)
        flower, _ = classifier.honesty_scores(features, probabilities.max(axis=1))
        species = space.scores(features.mean(axis=1), probabilities.max(axis=1))
        return verdicts_of(rules, probabilities, flower, species), probabilities

    known_verdicts, probabilities = verdicts(known.heldout.x)
    right = probabilities.argmax(axis=1) == known.heldout.y
    gone = ~np.isin(rows.val.y, left_out), ~np.isin(rows.heldout.y, left_out)
    unknown_x = np.concatenate([rows.val.x[~gone[0]], rows.heldout.x[~gone[1]]])
    unknown_verdicts, _ = verdicts(unknown_x)
    sure = known_verdicts == Verdict.SURE
    names = [splits["train"].class_names[k] for k in left_out]
    print(f"left out ({n_out}, seed {LEAVE_OUT_SEED}): {', '.join(names)}")
    print(
        f"cuts chosen on the calibration rows: unsure below {rules.unsure_below:.3f}, "
        f"unknown species below {rules.unknown_species_below:.2f}\n"
    )
    print("| photos | n | not a flower | unknown species | not sure | sure | top-1 of sure |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(share_row("known species, base held-out", known_verdicts, f"{right[sure].mean():.1%}"))
    print(share_row("left-out species (val + held-out)", unknown_verdicts))
    garden = read_garden(data)
    measured = ~garden.fitting & np.isin(garden.oxford_class, left_out)
    if measured.any():
        garden_x = garden.features(tuple(recipe.serve_views), cache)[measured]
        print(share_row("left-out species, garden_photos measuring half", verdicts(garden_x)[0]))
    trade_off(rules.unsure_below, (probabilities, known_verdicts, right), verdicts(unknown_x))
    calibration_pair = (mean_rows(known.calibration.x), calibration_probabilities)
    known_triple = (mean_rows(known.heldout.x), probabilities, right)
    unknown_pair = (unknown_x.mean(axis=1), head_probabilities(head, unknown_x))
    print_candidates(
        f"left-out species, seed {LEAVE_OUT_SEED}",
        candidate_rows(
            (space, raw_space), unsure_below, calibration_pair, known_triple, unknown_pair
        ),
    )
    if simulate:
        simulated_unknowns((known.fit.x, known.fit.y), (known.val.x, known.val.y), metadata.recipe)


def simulated_unknowns(
    fit: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], recipe: dict
) -> None:
    """The candidates on species left out of the fitting rows, SIMULATED_FOLDS folds of the known
    species (seeded): per fold a head (the product recipe's epochs) and a species space without
    the fold's species, unsure and unknown-species cuts on the other species' val photos; known:
    those val photos, unknown: every photo (fitting rows and val) of the fold's species. The
    shares are the folds' means."""
    (fit_x, fit_y), (val_x, val_y) = fit, val
    n_known = int(fit_y.max()) + 1
    fold = np.random.default_rng(1).permutation(n_known) % SIMULATED_FOLDS
    per_fold = []
    for k in range(SIMULATED_FOLDS):
        inside = np.flatnonzero(fold != k)
        index = np.full(n_known, -1)
        index[inside] = np.arange(len(inside))
        rows, val_in = fold[fit_y] != k, fold[val_y] != k
        head, _ = fit_rows(
            len(inside),
            (fit_x[rows].mean(axis=1), index[fit_y[rows]], None),
            RowRecipe(),
            recipe["epochs"],
        )
        spaces = tuple(
            fit_species_space(fit_x[rows].mean(axis=1), index[fit_y[rows]], len(inside), root)
            for root in (True, False)
        )
        val_probabilities = head_probabilities(head, val_x[val_in])
        unsure_below = unsure_cut(val_probabilities, index[val_y[val_in]])
        right = val_probabilities.argmax(axis=1) == index[val_y[val_in]]
        unknown_x = np.concatenate([fit_x[~rows], val_x[~val_in]])
        val_pair = (val_x[val_in].mean(axis=1), val_probabilities)
        unknown_pair = (unknown_x.mean(axis=1), head_probabilities(head, unknown_x))
        per_fold.append(
            candidate_rows(spaces, unsure_below, val_pair, (*val_pair, right), unknown_pair)
        )
    mean = [
        (*first[:2], *np.mean([fold_rows[i][2:] for fold_rows in per_fold], axis=0))
        for i, first in enumerate(per_fold[0])
    ]
    print_candidates(
        f"simulated: {SIMULATED_FOLDS} folds of the {n_known} known species; known = val", mean
    )


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
    parser.add_argument("--limit", type=int, help="at most this many photos per folder (CI)")
    parser.add_argument(
        "--simulate", action="store_true", help="also species left out of the fitting rows"
    )
    args = parser.parse_args()
    classifier = FlowerClassifier.from_folder(args.model)
    cache = FeatureCache(args.cache_dir, classifier.artifact.metadata.scaling)
    shipped_heldout(classifier, args.model)
    realworld_tables(classifier, args.data, cache, args.limit)
    if not args.no_leave_out:
        leave_species_out(classifier, args.data, cache, args.leave_out, args.simulate)


if __name__ == "__main__":
    main()
