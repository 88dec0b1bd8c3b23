"""Growing the head with species users taught it (bot: /addspecies, storage/new_species.py).

A retraining may be given more class names than the serving model knows: the new ones come
last, and their rows are the users' photos labelled with them. A new species joins the model
only once the candidate answers its held-out photos (the gate's fifth or so of the feedback,
which never trains) right at least MIN_NEW_SPECIES_TOP1 of the time; otherwise it stays a candidate,
its rows weigh nothing in a second fit, and its output is cut from the head. The feature-space
scores behind the verdicts (centroids, the honesty model's species means) grow with the head,
from the same rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import keras
import numpy as np

from model_training.abstention import class_centroids
from model_training.honesty import HonestyModel
from model_training.model import build_head

MIN_NEW_SPECIES_TOP1 = 0.6


@dataclass(frozen=True)
class NewSpeciesCheck:
    species: str
    label: int
    heldout: int  # held-out feedback photos of it
    right: int  # of which the candidate named it
    accepted: bool
    why: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_new_species(
    predicted: np.ndarray, heldout_y: np.ndarray, class_names: list[str], first_new: int
) -> list[NewSpeciesCheck]:
    """`predicted`: the candidate's top-1 on the held-out feedback photos."""
    checks = []
    for label in range(first_new, len(class_names)):
        members = heldout_y == label
        n, right = int(members.sum()), int((predicted[members] == label).sum())
        if not n:
            accepted, why = False, "no held-out photos yet"
        elif right / n < MIN_NEW_SPECIES_TOP1:
            accepted, why = False, f"held-out top-1 {right / n:.0%} < {MIN_NEW_SPECIES_TOP1:.0%}"
        else:
            accepted, why = True, f"held-out top-1 {right / n:.0%}"
        checks.append(NewSpeciesCheck(class_names[label], label, n, right, accepted, why))
    return checks


def without_classes(head: keras.Model, keep: list[int]) -> keras.Model:
    """The head with only the `keep` outputs (a softmax over fewer classes: the same ranking)."""
    kernel, bias = head.get_layer("species").get_weights()
    smaller = build_head(len(keep))
    smaller.get_layer("species").set_weights([kernel[:, keep], bias[keep]])
    return smaller


def grown_scores(
    centroids: np.ndarray,
    honesty: HonestyModel | None,
    x: np.ndarray,
    y: np.ndarray,
    new_labels: list[int],
) -> tuple[np.ndarray, HonestyModel | None]:
    """Centroids and whitened species means for the new classes, from their training rows."""
    if not new_labels:
        return centroids, honesty
    rows = [x[y == label].astype(np.float32) for label in new_labels]
    features = np.concatenate(rows)[:, None, :]  # one "view": the rows are view means already
    labels = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    centroids = np.concatenate([centroids, class_centroids(features, labels, len(rows))])
    if honesty is not None:
        means = np.stack([honesty.space.whitened_mean(r) for r in rows])
        honesty = replace(honesty, species_means=np.concatenate([honesty.species_means, means]))
    return centroids, honesty
