"""The "not sure" and "unknown species" cuts, chosen by the honesty goals.

Honesty first, then usefulness: every pair of cuts on a grid (a top-1 confidence below which an
answer is "not sure", and the share of known calibration photos the species score calls
"unknown species") is checked against the goals on photos the scoring heads never trained on:
species left out of training in several folds, tulips and astilbe (species outside the 102) and
the known species' real-world photos, each with a margin. Of the pairs that meet every goal, the
one that leaves the most answers sure and right is kept.

The margin: each share must meet its goal at the upper end of a one-sided 90% Wilson interval
(1 sure tulip in 87 counts as 3.8%, not 1.1%), the left-out species' mean over their
pooled photos, and the worst fold's share must meet the worst-fold goal as measured (the worst
of five is its own margin).

The species cut travels as a share, not a score: a head fitted without a fold's species scores
its own calibration photos on its own scale, so the same share gives each fold its own cut, and
the product's cut is that share of its calibration photos' scores.

Pure numpy: model_training/workflow.py fits the heads and scores the photos.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# One-sided 90%: the normal quantile of the Wilson interval's upper end.
MARGIN_Z = 1.2816
CONFIDENCE_CUTS = np.round(np.arange(0.50, 0.99, 0.02), 2)
UNKNOWN_SHARES = np.round(np.arange(0.02, 0.61, 0.02), 2)
LEAVE_OUT_FOLDS = 5
LEAVE_OUT_SPECIES = 10  # per fold
LEAVE_OUT_SEED = 0


@dataclass(frozen=True)
class HonestyGoals:
    """At most these shares (the project's goals for honest answers)."""

    left_out_sure_mean: float = 0.08  # species left out of training answered "sure", fold mean
    left_out_sure_worst: float = 0.10  # ... the worst fold
    unknown_sure: dict[str, float] = field(
        default_factory=lambda: {"tulips": 0.04, "astilbe": 0.10}
    )  # real-world species outside the 102, answered "sure"
    sure_and_wrong: dict[str, float] = field(
        default_factory=lambda: {"flower_photos": 0.02, "garden_photos": 0.015}
    )  # real-world photos of known species answered "sure" with a wrong name


GOALS = HonestyGoals()


@dataclass(frozen=True)
class Scored:
    """Photos as one head and species space answer them: top-1 confidence, species score, and
    whether the top-1 is right (None: photos of a species that head does not know)."""

    confidence: np.ndarray
    species: np.ndarray
    right: np.ndarray | None = None

    def sure(self, unsure_below: float, species_cut: float) -> np.ndarray:
        return (self.confidence >= unsure_below) & (self.species >= species_cut)

    def __len__(self) -> int:
        return len(self.confidence)


@dataclass(frozen=True)
class LeaveOutFold:
    known: Scored  # the fold's calibration photos (its known species): its species cut
    unknown: Scored  # photos of the species left out of the fold's head


@dataclass(frozen=True)
class Evidence:
    """What the cuts are chosen on, none of it trained on by the head that scores it."""

    calibration: Scored  # known species: sets the species cut (a share of these)
    known: dict[str, Scored]  # real-world photos of known species: sure and wrong, sure and right
    unknown: dict[str, Scored]  # real-world photos of species outside the 102
    folds: list[LeaveOutFold]


@dataclass(frozen=True)
class Choice:
    unsure_below: float
    unknown_share: float
    unknown_species_below: float
    goals_met: bool
    figures: dict[str, float]  # the chosen pair's shares and their margins' upper ends

    def as_dict(self) -> dict:
        return asdict(self)


def wilson_upper(share: float, n: int, z: float = MARGIN_Z) -> float:
    """Upper end of the Wilson score interval for a share of n photos."""
    if n == 0:
        return 0.0
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


def leave_out_folds(
    n_classes: int,
    realworld_species: np.ndarray,
    folds: int = LEAVE_OUT_FOLDS,
    per_fold: int = LEAVE_OUT_SPECIES,
    seed: int = LEAVE_OUT_SEED,
) -> list[np.ndarray]:
    """Species to leave out, drawn at random; each fold gets one species with real-world rows
    (while there are such species), so every fold measures a species photographed the way
    people do, its real-world rows left out with it."""
    rng = np.random.default_rng(seed)
    with_rows = rng.permutation(np.asarray(realworld_species, dtype=int))
    others = rng.permutation(np.setdiff1d(np.arange(n_classes), with_rows))
    drawn = []
    for k in range(folds):
        chosen = list(with_rows[k : k + 1])
        need = per_fold - len(chosen)
        chosen += list(others[k * per_fold : k * per_fold + need])
        drawn.append(np.sort(np.array(chosen, dtype=int)))
    return drawn


def figures_for(
    evidence: Evidence, unsure_below: float, share: float
) -> tuple[dict[str, float], float]:
    """The shares a pair of cuts gives (with their margins' upper ends) and its usefulness: the
    mean share of sure and right answers over the calibration photos and each known set."""
    figures: dict[str, float] = {}
    cut = float(np.quantile(evidence.calibration.species, share))
    for name, scored in evidence.known.items():
        sure = scored.sure(unsure_below, cut)
        figures[f"{name}_sure_and_right"] = float((sure & scored.right).mean())
        wrong = float((sure & ~scored.right).mean())
        figures[f"{name}_sure_and_wrong"] = wrong
        figures[f"{name}_sure_and_wrong_upper"] = wilson_upper(wrong, len(scored))
    for name, scored in evidence.unknown.items():
        sure = float(scored.sure(unsure_below, cut).mean())
        figures[f"{name}_sure"] = sure
        figures[f"{name}_sure_upper"] = wilson_upper(sure, len(scored))
    if evidence.folds:
        per_fold, pooled = [], []
        for fold in evidence.folds:
            fold_cut = float(np.quantile(fold.known.species, share))
            sure = fold.unknown.sure(unsure_below, fold_cut)
            per_fold.append(float(sure.mean()))
            pooled.append(sure)
        everything = np.concatenate(pooled)
        figures["left_out_sure_mean"] = float(np.mean(per_fold))
        figures["left_out_sure_upper"] = wilson_upper(float(everything.mean()), len(everything))
        figures["left_out_sure_worst"] = float(np.max(per_fold))
    calibration = evidence.calibration
    sure = calibration.sure(unsure_below, cut)
    figures["calibration_sure"] = float(sure.mean())
    figures["calibration_sure_and_right"] = float((sure & calibration.right).mean())
    useful = [figures["calibration_sure_and_right"]] + [
        figures[f"{name}_sure_and_right"] for name in evidence.known
    ]
    return figures, float(np.mean(useful))


def excess(figures: dict[str, float], goals: HonestyGoals) -> float:
    """How far the pair misses its goals with margin (the largest ratio of an upper end to its
    goal, minus one): at most 0 when every goal is met."""
    ratios = [
        figures[f"{name}_sure_and_wrong_upper"] / goal
        for name, goal in goals.sure_and_wrong.items()
        if f"{name}_sure_and_wrong_upper" in figures
    ]
    ratios += [
        figures[f"{name}_sure_upper"] / goal
        for name, goal in goals.unknown_sure.items()
        if f"{name}_sure_upper" in figures
    ]
    if "left_out_sure_upper" in figures:
        ratios.append(figures["left_out_sure_upper"] / goals.left_out_sure_mean)
        ratios.append(figures["left_out_sure_worst"] / goals.left_out_sure_worst)
    return max(ratios, default=0.0) - 1.0


def choose_cuts(evidence: Evidence, goals: HonestyGoals = GOALS) -> Choice:
    """The pair of cuts that meets every goal with margin and leaves the most answers sure and
    right; if none does, the pair that misses them by the least (goals_met False)."""
    best: tuple[tuple[bool, float], float, float, dict[str, float]] | None = None
    for unsure_below in CONFIDENCE_CUTS:
        for share in UNKNOWN_SHARES:
            figures, useful = figures_for(evidence, float(unsure_below), float(share))
            missed = excess(figures, goals)
            # Met goals first; among them the most useful, otherwise the least missed.
            rank = (True, useful) if missed <= 0 else (False, -missed)
            if best is None or rank > best[0]:
                best = (rank, float(unsure_below), float(share), figures)
    assert best is not None
    (met, _), unsure_below, share, figures = best
    cut = float(np.quantile(evidence.calibration.species, share))
    return Choice(unsure_below, share, cut, met, figures)
