"""Several photos of one plant -> one answer (a Telegram album, like Pl@ntNet's multi-image call).

Each photo is answered on its own first (model_training/classifier.py); the photos that look like
a flower are then combined into one top-5 and one verdict. Photos that do not look like a flower
are left out and named, so one photo of the pot does not drag the answer down.

The combining rule was chosen on Oxford val by bench/albums.py (docs/albums.md): the mean of
the photos' log-probabilities (a product of independent opinions: one confident photo counts
for more than several unsure ones) against the mean of their probabilities. The verdict's
species score was chosen on flower_photos' fitting half by bench/pairs.py: the photos' scores
taken at the album's confidence, averaged.
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


class Known(StrEnum):
    """How the photos' species scores make the album's. A photo's score is its nearness to a
    known species plus confidence_weight x the log of its own top-1 confidence (honesty.py); "at
    the album's confidence" swaps that confidence for the combined one, which the verdict's
    "not sure" rule uses too."""

    MEAN = "mean"  # of the photos' own scores
    MEAN_AT_ALBUM = "mean_at_album"  # of their scores at the album's confidence
    MAX = "max"  # the best photo's own score
    MAX_AT_ALBUM = "max_at_album"


# Chosen on the real-world fitting halves (bench/pairs.py) under oxford102-v7's cuts, which call
# 38% of the calibration photos "unknown species": a mean of two scores near that cut falls below
# it more often than either photo, so two photos were sure and right less often than one
# (flower_photos 8.1% against 15.1%); the better photo's score at the album's confidence gives
# 20.1% (garden_photos 77.0% against 52.0%), sure and wrong 0.9% against 0.6% and 0.0% for both.
CHOSEN_KNOWN = Known.MAX_AT_ALBUM


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
    probabilities, verdict, used = combined(
        classifier.rules,
        np.stack([a.probabilities for a in answers]),
        [a.verdict for a in answers],
        np.array([a.flower_score for a in answers]),
        np.array([a.species_score for a in answers]),
        np.array([min(a.photo_size) for a in answers]),
        classifier.confidence_weight,
    )
    return AlbumAnswer(
        top5=classifier.top_k_of(probabilities),
        verdict=verdict,
        model_version=answers[used[0]].model_version,
        used=used,
        not_flowers=[i for i in range(len(answers)) if i not in used],
    )


def combined(
    rules: VerdictRules,
    probabilities: np.ndarray,
    verdicts: Sequence[Verdict],
    flower_scores: np.ndarray,
    species_scores: np.ndarray,
    short_sides: np.ndarray,
    confidence_weight: float,
    known: Known = CHOSEN_KNOWN,
) -> tuple[np.ndarray, Verdict, list[int]]:
    """The album rule on its photos' own scores, one row or value per photo -> the combined
    probabilities, the album's verdict and the positions of the photos combined (also what
    bench/pairs.py measures, on cached features).

    The verdict takes the best photo's size and flower score (a close-up and a photo of the whole
    plant are both fine), the species score by the `known` rule, and the combined confidence."""
    flowers = [i for i, v in enumerate(verdicts) if v != Verdict.NOT_A_FLOWER]
    used = flowers or list(range(len(verdicts)))
    combination = combine(probabilities[used])
    confidence = float(combination.max())
    scores = species_scores[used]
    if known in (Known.MEAN_AT_ALBUM, Known.MAX_AT_ALBUM):
        own = np.maximum(probabilities[used].max(axis=1), 1e-12)
        scores = scores + confidence_weight * (np.log(confidence) - np.log(own))
    verdict = rules.verdict(
        confidence=confidence,
        flower_score=float(flower_scores[used].max()),
        short_side=int(short_sides[used].max()),
        species_score=float(
            scores.max() if known in (Known.MAX, Known.MAX_AT_ALBUM) else scores.mean()
        ),
    )
    return combination, verdict, used
