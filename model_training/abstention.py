"""The verdict of an answer: when to say "too small", "not a flower" or "not sure" instead of
naming a species. The rules travel in the model folder (metadata "thresholds"); this module is the
only place that compares a score with them.

Too small: a photo whose short side is below `min_photo_side` pixels has lost the detail that
tells species apart, and its features drift away from every species' centroid, so it would be
called "not a flower". Measured by bench/small_photos.py (README, "Small photos").

Not a flower: the photo's backbone features (mean over views) are compared with each species'
centroid by cosine similarity; a photo far from every species is no flower we know. Unlike the
softmax confidence this does not depend on the head, whose probabilities must sum to one over
flowers even for a cat. Measured (bench/thresholds.py): with the cut at the 1% quantile of val
flowers, 0.9% of test flowers and all 28 non-flower sample photos are rejected.

Not sure: the top-1 confidence below which val answers are right less than half the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

FLOWERS_REJECTED_ON_VAL = 0.01
# Chosen by bench/small_photos.py; models trained before it was measured get it too.
MIN_PHOTO_SIDE = 160


class Verdict(StrEnum):
    SURE = "sure"
    NOT_SURE = "not_sure"
    NOT_A_FLOWER = "not_a_flower"
    TOO_SMALL = "too_small"


@dataclass(frozen=True)
class VerdictRules:
    not_a_flower_below: float  # cosine similarity to the nearest species centroid
    unsure_below: float  # top-1 confidence
    min_photo_side: int = MIN_PHOTO_SIDE  # pixels, the photo as sent

    @classmethod
    def from_thresholds(cls, thresholds: dict[str, float]) -> VerdictRules:
        return cls(
            not_a_flower_below=float(thresholds["not_a_flower_below"]),
            unsure_below=float(thresholds["unsure_below"]),
            min_photo_side=int(thresholds.get("min_photo_side", MIN_PHOTO_SIDE)),
        )

    def in_order(self) -> list[tuple[Verdict, str, float]]:
        """(verdict, score, below): the first score below its cut decides; none: sure.
        Size first, so a small photo is never called "not a flower" for being small. The web
        export writes this list, so the page decides as this module does."""
        return [
            (Verdict.TOO_SMALL, "short_side", self.min_photo_side),
            (Verdict.NOT_A_FLOWER, "flower_score", self.not_a_flower_below),
            (Verdict.NOT_SURE, "confidence", self.unsure_below),
        ]

    def verdict(self, confidence: float, flower_score: float, short_side: int) -> Verdict:
        scores = {"confidence": confidence, "flower_score": flower_score, "short_side": short_side}
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
