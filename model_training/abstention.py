"""The verdict of an answer: when to say "too small", "not a flower" or "not sure" instead of
naming a species. The rules travel in the model folder (metadata "thresholds"); this module is the
only place that compares a score with them.

Too small: a photo whose short side is below `min_photo_side` pixels has lost the detail that
tells species apart, and its features drift away from every species' centroid, so it would be
called "not a flower". Measured by bench/small_photos.py (docs/honesty.md, "Small photos").

Not a flower: the log-odds of a flower/non-flower logistic regression on the backbone features
(model_training/honesty.py), fitted on Oxford and real-world flowers against real non-flower
photos. Model folders from before it (no honesty.npz) keep the old score, the cosine similarity to
the nearest species centroid, cut at the 1% quantile of val flowers.

Unknown species: a relative Mahalanobis distance to the nearest species mean (honesty.py); a
flower far from every species we know gets "it may be a species I do not know yet" and its best
guesses instead of a confident name. Measured by bench/realworld.py (species left out of a
training run, and tulips, which Oxford 102 lacks).

Not sure: the top-1 confidence below which val answers are right less than half the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

FLOWERS_REJECTED_ON_VAL = 0.01
# Chosen by bench/small_photos.py; models trained before it was measured get it too.
MIN_PHOTO_SIDE = 160


# The one-view answer (model_training/one_view.py): this view alone, with cuts of its own kept
# in the thresholds under these keys (key -> the VerdictRules field it sets).
ONE_VIEW = "full"
ONE_VIEW_KEYS = {
    "one_view_not_a_flower_below": "not_a_flower_below",
    "one_view_unsure_below": "unsure_below",
    "one_view_unknown_species_below": "unknown_species_below",
}


class Verdict(StrEnum):
    SURE = "sure"
    NOT_SURE = "not_sure"
    UNKNOWN_SPECIES = "unknown_species"
    NOT_A_FLOWER = "not_a_flower"
    TOO_SMALL = "too_small"


@dataclass(frozen=True)
class VerdictRules:
    not_a_flower_below: float  # flower score: log-odds (honesty.npz) or cosine (older folders)
    unsure_below: float  # top-1 confidence
    min_photo_side: int = MIN_PHOTO_SIDE  # pixels, the photo as sent
    # Species score (honesty.SpeciesSpace: higher is nearer a known species); -inf (never) for
    # older folders.
    unknown_species_below: float = -math.inf

    @classmethod
    def from_thresholds(cls, thresholds: dict[str, float]) -> VerdictRules:
        return cls(
            not_a_flower_below=float(thresholds["not_a_flower_below"]),
            unsure_below=float(thresholds["unsure_below"]),
            min_photo_side=int(thresholds.get("min_photo_side", MIN_PHOTO_SIDE)),
            unknown_species_below=float(thresholds.get("unknown_species_below", -math.inf)),
        )

    @classmethod
    def one_view(cls, thresholds: dict[str, float]) -> VerdictRules | None:
        """The one-view answer's rules; None when the folder has no one-view cuts."""
        if not all(key in thresholds for key in ONE_VIEW_KEYS):
            return None
        one_view = {field: thresholds[key] for key, field in ONE_VIEW_KEYS.items()}
        return cls.from_thresholds({**thresholds, **one_view})

    def in_order(self) -> list[tuple[Verdict, str, float]]:
        """(verdict, score, below): the first score below its cut decides; none: sure.
        Size first, so a small photo is never called "not a flower" for being small. The web
        export writes this list, so the page decides as this module does."""
        return [
            (Verdict.TOO_SMALL, "short_side", self.min_photo_side),
            (Verdict.NOT_A_FLOWER, "flower_score", self.not_a_flower_below),
            (Verdict.UNKNOWN_SPECIES, "species_score", self.unknown_species_below),
            (Verdict.NOT_SURE, "confidence", self.unsure_below),
        ]

    def verdict(
        self,
        confidence: float,
        flower_score: float,
        short_side: int,
        species_score: float = math.inf,
    ) -> Verdict:
        scores = {
            "confidence": confidence,
            "flower_score": flower_score,
            "short_side": short_side,
            "species_score": species_score,
        }
        for verdict, score, below in self.in_order():
            if scores[score] < below:
                return verdict
        return Verdict.SURE


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_centroids(features: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(photos, views, dim) features -> (n_classes, dim) unit-length species centroids."""
    photos = _unit(features.mean(axis=1))
    return _unit(np.stack([photos[labels == k].mean(axis=0) for k in range(n_classes)]))


def flower_scores(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine similarity of each photo to its nearest species centroid (higher: more flower)."""
    return (_unit(features.mean(axis=1)) @ centroids.T).max(axis=1)


def not_a_flower_cut(val_scores: np.ndarray) -> float:
    return float(np.quantile(val_scores, FLOWERS_REJECTED_ON_VAL))


def unsure_cut(val_probabilities: np.ndarray, val_labels: np.ndarray) -> float:
    """The highest confidence c at which val answers up to c are right less than half the time."""
    confidence = val_probabilities.max(axis=1)
    right = val_probabilities.argmax(axis=1) == val_labels
    order = np.argsort(confidence)
    right_share = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    below_half = np.flatnonzero(right_share < 0.5)
    return float(confidence[order][below_half[-1]]) if below_half.size else 0.0
