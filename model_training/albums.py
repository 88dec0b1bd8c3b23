"""Several photos of one plant -> one answer (a Telegram album, like Pl@ntNet's multi-image call).

Each photo is answered on its own first (model_training/classifier.py); the photos that look like
a flower are then combined into one top-5 and one verdict. Photos that do not look like a flower
are left out and named, so one photo of the pot does not drag the answer down.

The combining rule was chosen on Oxford val by bench/albums.py (docs/albums.md): the mean of
the photos' log-probabilities (a product of independent opinions: one confident photo counts
for more than several unsure ones) against the mean of their probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from model_training.abstention import Verdict, VerdictRules
from model_training.classifier import Answer, FlowerClassifier, ShownAnswer


class Combine(StrEnum):
    MEAN_LOG = "mean_log"  # geometric mean, renormalised
    MEAN = "mean"  # arithmetic mean


CHOSEN = Combine.MEAN_LOG
# Keeps log() finite: a species one photo rules out entirely still leaves the others a say.
FLOOR = 1e-6


def combine(probabilities: np.ndarray, rule: Combine = CHOSEN) -> np.ndarray:
    """(photos, n_classes) probabilities of one plant -> (n_classes,) combined probabilities.
    Also works on (groups, photos, n_classes) -> (groups, n_classes), for the benchmark."""
    if rule == Combine.MEAN:
        return probabilities.mean(axis=-2)
    log_mean = np.log(np.maximum(probabilities, FLOOR)).mean(axis=-2)
    combined = np.exp(log_mean - log_mean.max(axis=-1, keepdims=True))
    return combined / combined.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class AlbumAnswer(ShownAnswer):
    used: list[int]  # positions (0-based) of the photos combined
    not_flowers: list[int]  # positions left out: they do not look like a flower


def album_answer(classifier: FlowerClassifier, answers: Sequence[Answer]) -> AlbumAnswer:
    """The photos' own answers -> the album's. If no photo looks like a flower, all of them are
    combined and the verdict stays "not a flower"."""
    flowers = [i for i, a in enumerate(answers) if a.verdict != Verdict.NOT_A_FLOWER]
    used = flowers or list(range(len(answers)))
    chosen = [answers[i] for i in used]
    probabilities = combine(np.stack([a.probabilities for a in chosen]))
    return AlbumAnswer(
        top5=classifier.top_k_of(probabilities),
        verdict=_verdict(classifier.rules, chosen, float(probabilities.max())),
        model_version=chosen[0].model_version,
        used=used,
        not_flowers=[i for i in range(len(answers)) if i not in used],
    )


def _verdict(rules: VerdictRules, chosen: Sequence[Answer], confidence: float) -> Verdict:
    """The album's rules: its best photo's size and flower score (a close-up and a photo of
    the whole plant are both fine), the photos' mean species score, the combined confidence."""
    return rules.verdict(
        confidence=confidence,
        flower_score=max(a.flower_score for a in chosen),
        short_side=max(min(a.photo_size) for a in chosen),
        species_score=float(np.mean([a.species_score for a in chosen])),
    )
