"""The feature-space scores behind "not a flower" and "unknown species", and how they are fitted.

Both read a photo's frozen backbone features, mean over its serving views, never the head: the
head's probabilities sum to one over known species even for a cat or a tulip.

flower score: the log-odds of a small flower/non-flower logistic regression. Fitted on Oxford
flowers, the fitting half of the real-world `flower_photos` (tulips included: an unknown species
is still a flower) and the fitting half of `nonflower` (model_training/realworld.py). Cosine
similarity to species centroids, the rule it replaces, was calibrated on Oxford alone and called
27-65% of real-world flowers "not a flower": Flickr flowers sit far from every Oxford centroid
while still looking nothing like a non-flower, which a discriminative model learns and a distance
to flowers alone cannot.

species score: minus the Mahalanobis distance to the nearest species mean, with one shared
covariance (shrunk towards its mean variance and whitened in its top principal directions, which
keeps the folder small and drops directions too thin to estimate). A photo far from every
species, measured in the directions species actually vary in, is a species we do not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

HONESTY_FILE = "honesty.npz"
# Shrinkage and kept directions: on a leave-10-species-out run (bench/realworld.py) shrinkage 0.1
# to 0.3 and 64 to 1280 directions gave the same known/unknown split within 1-3 points; 256
# directions cost 1.3 MB in the folder (1280 would cost 6.5 MB).
SHRINKAGE = 0.1
DIRECTIONS = 256
# Real-world flowers of the fitting half (cross-validated) the "not a flower" cut may reject: with
# 2% only 86% of the fitting half's non-flowers fell below it (cross-validated), with 4% 96% did
# (the goal: at most 5% of flowers rejected, at least 95% of non-flowers).
FLOWERS_REJECTED_WHEN_FITTING = 0.04
# Known val flowers the "unknown species" cut may send to "unknown species".
KNOWN_CALLED_UNKNOWN_ON_VAL = 0.05
# Regularisation of the flower/non-flower model on standardised features, chosen on the fitting
# half: at the cut above, cross-validated, C = 0.01 rejected 96.0% of its non-flowers, 0.1 94.7%,
# 1 90.1%.
FLOWER_C = 0.01


@dataclass(frozen=True)
class HonestyModel:
    flower_weights: np.ndarray  # (dim,) on raw mean features: log-odds = x @ w + b
    flower_bias: float
    whitening: np.ndarray  # (dim, directions): z = x @ whitening
    species_means: np.ndarray  # (n_classes, directions): each species' mean, whitened

    def flower_scores(self, features: np.ndarray) -> np.ndarray:
        """(photos, views, dim) -> log-odds that each photo is a flower."""
        return features.mean(axis=1) @ self.flower_weights + self.flower_bias

    def species_scores(self, features: np.ndarray) -> np.ndarray:
        """(photos, views, dim) -> minus the Mahalanobis distance to the nearest species mean."""
        return species_scores(features.mean(axis=1), self.whitening, self.species_means)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            flower_weights=self.flower_weights.astype(np.float32),
            flower_bias=np.float32(self.flower_bias),
            whitening=self.whitening.astype(np.float32),
            species_means=self.species_means.astype(np.float32),
        )


def load_honesty(folder: str | Path) -> HonestyModel | None:
    """The folder's honesty model, or None for folders written before it existed."""
    path = Path(folder) / HONESTY_FILE
    if not path.is_file():
        return None
    with np.load(path) as stored:
        return HonestyModel(
            flower_weights=stored["flower_weights"],
            flower_bias=float(stored["flower_bias"]),
            whitening=stored["whitening"],
            species_means=stored["species_means"],
        )


def species_scores(rows: np.ndarray, whitening: np.ndarray, means: np.ndarray) -> np.ndarray:
    z = rows.astype(np.float64) @ whitening
    squared = (z**2).sum(axis=1)[:, None] - 2 * z @ means.T + (means**2).sum(axis=1)[None]
    return -np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def fit_species_space(rows: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple:
    """(photos, dim) rows -> (whitening (dim, DIRECTIONS), whitened species means)."""
    rows = rows.astype(np.float64)
    means = np.stack([rows[labels == k].mean(axis=0) for k in range(n_classes)])
    residuals = rows - means[labels]
    covariance = residuals.T @ residuals / max(len(rows) - n_classes, 1)
    covariance = (1 - SHRINKAGE) * covariance + SHRINKAGE * np.trace(covariance) / len(
        covariance
    ) * np.eye(len(covariance))
    variances, directions = np.linalg.eigh(covariance)
    # eigh's sign per direction is arbitrary but the distance does not depend on it.
    whitening = directions[:, -DIRECTIONS:] / np.sqrt(variances[-DIRECTIONS:])
    return whitening, means @ whitening


def fit_flower_model(
    rows: np.ndarray, is_flower: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """Flower/non-flower logistic regression -> (weights, bias, cross-validated log-odds).

    Each group (e.g. Oxford flowers, real-world flowers, non-flowers) weighs the same in total, so
    7,000 Oxford rows do not drown 400 Flickr photos; lbfgs and fixed folds make it repeatable.
    """
    rows = rows.astype(np.float64)
    mean, scale = rows.mean(axis=0), rows.std(axis=0) + 1e-6
    standard = (rows - mean) / scale
    weights = np.zeros(len(rows))
    for g in np.unique(group):
        weights[group == g] = 1.0 / (group == g).sum()
    weights *= len(rows) / weights.sum()
    model = LogisticRegression(C=FLOWER_C, max_iter=5000)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    held_out = cross_val_predict(
        model,
        standard,
        is_flower,
        cv=folds,
        method="decision_function",
        params={"sample_weight": weights},
    )
    model.fit(standard, is_flower, sample_weight=weights)
    w = model.coef_[0] / scale
    return w, float(model.intercept_[0] - mean @ w), held_out


def not_a_flower_cut(held_out_flower_scores: np.ndarray) -> float:
    return float(np.quantile(held_out_flower_scores, FLOWERS_REJECTED_WHEN_FITTING))


def unknown_species_cut(val_species_scores: np.ndarray) -> float:
    return float(np.quantile(val_species_scores, KNOWN_CALLED_UNKNOWN_ON_VAL))
