"""The one-view answer: the model's "full" view alone, for when the bot has more photos than it
can answer in time (bot/overload.py). A quarter of the backbone's work, but a single view is less
sure of itself, so it gets cuts of its own, calibrated so that its verdicts stay honest: on the
calibration photos it says "sure" of a wrong species (or of a species it does not know, or of a
non-flower) no more often than the four-view answer does, and a "sure" of its is wrong no more
often than one of the four-view answer's.

The cuts live in the model folder's metadata thresholds under abstention.ONE_VIEW_KEYS; a
folder without them has no one-view answer. Training calibrates them on `flower_photos`' and
`nonflower`'s fitting halves (`real_world_one_view_cuts`): phone photos the head never trained
on, of known species, tulips and no flower at all. The per-view features are cached, and the
one-view features are one column of the four-view ones, so this costs no backbone run.
`add_one_view_cuts` writes cuts into an existing folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_training.abstention import ONE_VIEW, Verdict, VerdictRules
from model_training.artifact import METADATA_FILE
from model_training.features import FeatureCache
from model_training.head import DenseHead
from model_training.honesty import HonestyModel
from model_training.realworld import UNKNOWN_CLASS, RealWorld

# Candidate cuts: these quantiles of the calibration flowers' one-view scores.
CANDIDATE_QUANTILES = np.linspace(0.0, 0.9, 46)


def scores(
    head: DenseHead, honesty: HonestyModel, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photos, views, dim) -> probabilities, flower scores and species scores, as serving
    computes them (model_training/classifier.py) from these views."""
    probabilities = head.probabilities(features).mean(axis=1)
    confidences = probabilities.max(axis=1)
    flower = honesty.flower_scores(features)
    return probabilities, flower, honesty.species_scores(features, confidences)


def verdicts(
    rules: VerdictRules, probabilities: np.ndarray, flower: np.ndarray, species: np.ndarray
) -> np.ndarray:
    """Each photo's verdict under the rules (photos large enough: features carry no size)."""
    confidences = probabilities.max(axis=1)
    return np.array(
        [
            rules.verdict(float(c), float(f), 10**6, float(s))
            for c, f, s in zip(confidences, flower, species, strict=True)
        ]
    )


def sure_and_wrong(sure: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The share of photos called sure of a species they are not (labels: UNKNOWN_CLASS for a
    species the model lacks or a non-flower, which every sure answer gets wrong)."""
    wrong = (labels == UNKNOWN_CLASS) | (probabilities.argmax(axis=1) != labels)
    return float((sure & wrong).mean())


def one_view_cuts(
    head: DenseHead,
    honesty: HonestyModel,
    thresholds: dict[str, float],
    features: np.ndarray,
    labels: np.ndarray,
    is_flower: np.ndarray,
    view: int = 0,
) -> dict[str, float]:
    """The one-view answer's cuts (ONE_VIEW_KEYS), from calibration photos the head never
    trained on.

    features: (photos, serving views, dim), `view` the position of ONE_VIEW ("full") among them
    (`one_view_position`); labels:
    the species index, UNKNOWN_CLASS for other flowers and non-flowers; is_flower: bool.
    "Not a flower" turns away the same share of the calibration flowers as the four-view cut
    does. The "unknown species" and "not sure" cuts are the pair, among quantiles of the
    flowers' one-view scores, that leaves the most photos sure and right while no more are sure
    and wrong than under the four-view answer, and no larger share of its sure answers: one
    view sees less, so fewer "sure" answers alone would not do (on `flower_photos`' fitting
    half, the four-view cuts left one view sure of 4 wrong photos in 51, four views 4 in 84).
    """
    rules = VerdictRules.from_thresholds(thresholds)
    probabilities, flower, species = scores(head, honesty, features)
    sure = verdicts(rules, probabilities, flower, species) == Verdict.SURE
    bound = sure_and_wrong(sure, probabilities, labels)
    wrong_when_sure = bound / max(float(sure.mean()), 1e-9)
    one_p, one_flower, one_species = scores(head, honesty, features[:, view : view + 1])
    turned_away = float((flower[is_flower] < rules.not_a_flower_below).mean())
    flower_cut = float(np.quantile(one_flower[is_flower], turned_away))
    confidences = one_p.max(axis=1)
    right = (one_p.argmax(axis=1) == labels) & (labels != UNKNOWN_CLASS)
    wrong = ~right
    flowering = one_flower >= flower_cut
    # Both cuts at least the four-view's: one view is never trusted more than four.
    unsure_candidates = np.union1d(
        np.quantile(confidences[is_flower], CANDIDATE_QUANTILES), [rules.unsure_below, np.inf]
    )
    species_candidates = np.union1d(
        np.quantile(one_species[is_flower], CANDIDATE_QUANTILES), [rules.unknown_species_below]
    )
    unsure_candidates = unsure_candidates[unsure_candidates >= rules.unsure_below]
    species_candidates = species_candidates[species_candidates >= rules.unknown_species_below]
    # (unsure, species, photo) at once: a few thousand photos by ~50 x ~50 candidates.
    sure = (
        flowering[None, None, :]
        & (confidences[None, None, :] >= unsure_candidates[:, None, None])
        & (one_species[None, None, :] >= species_candidates[None, :, None])
    )
    right_share = (sure & right).mean(axis=2)
    wrong_share = (sure & wrong).mean(axis=2)
    honest = (wrong_share <= bound) & (wrong_share <= wrong_when_sure * sure.mean(axis=2))
    best = np.unravel_index(np.argmax(np.where(honest, right_share, -1.0)), right_share.shape)
    return {
        "one_view_not_a_flower_below": flower_cut,
        "one_view_unsure_below": float(unsure_candidates[best[0]]),
        "one_view_unknown_species_below": float(species_candidates[best[1]]),
    }


def one_view_position(serve_views: list[str] | tuple[str, ...]) -> int:
    return list(serve_views).index(ONE_VIEW)


def real_world_one_view_cuts(
    head: DenseHead,
    honesty: HonestyModel,
    thresholds: dict[str, float],
    views: tuple[str, ...],
    photos: RealWorld,
    cache: FeatureCache,
) -> dict[str, float]:
    """`one_view_cuts` calibrated on real-world photos (training and bench/one_view.py pass
    `flower_photos`' and `nonflower`'s fitting half)."""
    return one_view_cuts(
        head,
        honesty,
        thresholds,
        photos.features(views, cache),
        photos.oxford_class,
        photos.is_flower,
        one_view_position(views),
    )


def add_one_view_cuts(folder: str | Path, cuts: dict[str, float]) -> None:
    """Write one-view cuts into an existing model folder's metadata (e.g. a copy of the shipped
    model in a test); training writes them with the rest of the thresholds."""
    path = Path(folder) / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["thresholds"] = {**metadata["thresholds"], **cuts}
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(metadata, indent=2) + "\n")
    staged.replace(path)
