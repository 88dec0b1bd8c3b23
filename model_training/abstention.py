"""When to say "not sure" and "not a flower" instead of naming a species.

Not a flower: the photo's backbone features (mean over views) are compared with each species'
centroid by cosine similarity; a photo far from every species is no flower we know. Unlike the
softmax confidence this does not depend on the head, whose probabilities must sum to one over
flowers even for a cat. Measured (bench/thresholds.py): with the cut at the 1% quantile of val
flowers, 0.9% of test flowers and all 28 non-flower sample photos are rejected.

Not sure: the top-1 confidence below which val answers are right less than half the time.
"""

from __future__ import annotations

import numpy as np

FLOWERS_REJECTED_ON_VAL = 0.01


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
