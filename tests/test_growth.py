"""Retraining grows the head with species users taught it, when their held-out photos are
learnt well enough (model_training/growth.py)."""

from __future__ import annotations

import numpy as np
from test_retrain_units import VIEWS, tiny_model

from model_training.growth import MIN_NEW_SPECIES_TOP1, without_classes
from model_training.heldout import held_out
from model_training.model import FEATURE_DIM
from model_training.retrain import LabelledPhoto, retrain, retrain_rows

USERS = range(100, 108)


def new_species_photos(centres: np.ndarray, label: int, n: int = 40, seed: int = 5) -> list:
    """n photos around `centres` (taken in turn), labelled `label`, from several users (ids
    1..n: 8 of the first 40 are held out for the gate, none of the first 8)."""
    rng = np.random.default_rng(seed)
    centres = np.atleast_2d(centres)
    return [
        LabelledPhoto(
            i,
            USERS[i % len(USERS)],
            (centres[i % len(centres)] + rng.normal(0, 0.1, (VIEWS, FEATURE_DIM))).astype(
                np.float32
            ),
            label,
        )
        for i in range(1, n + 1)
    ]


def test_a_new_species_learnt_well_joins_the_model(tmp_path):
    serving, base, _ = tiny_model()
    centre = np.random.default_rng(9).normal(0, 1, FEATURE_DIM)  # far from the 3 species
    labelled = new_species_photos(centre, label=3)
    rows = retrain_rows(base, labelled, len(labelled), cap=5)
    result = retrain(serving, base, rows, "tiny-grown", class_names=["a", "b", "c", "tulip"])
    [check] = result.gate["new_species"]
    assert check["species"] == "tulip" and check["accepted"] and check["heldout"] == 8
    assert check["right"] / check["heldout"] >= MIN_NEW_SPECIES_TOP1
    candidate = result.candidate
    assert candidate.class_names == ["a", "b", "c", "tulip"]
    assert candidate.metadata.classes == 4 and len(candidate.centroids) == 4
    probe = (centre + np.zeros((1, FEATURE_DIM))).astype(np.float32)
    assert candidate.head.predict(probe, verbose=0).argmax() == 3
    # The serving model could never name it; the candidate names all 8 (too few for the gate).
    assert (result.before["feedback_top1"], result.after["feedback_top1"]) == (0.0, 1.0)
    saved = candidate.save(tmp_path / "grown")
    assert (saved / "classes.txt").read_text().split("\n")[:4] == ["a", "b", "c", "tulip"]


def test_a_new_species_the_candidate_cannot_tell_apart_stays_a_candidate():
    serving, base, x = tiny_model()
    # Photos of all three known species labelled as a new one: nothing to tell it by.
    labelled = new_species_photos(x[[0, 30, 60]].astype(np.float64), label=3)
    rows = retrain_rows(base, labelled, len(labelled), cap=5)
    result = retrain(serving, base, rows, "tiny-grown", class_names=["a", "b", "c", "lookalike"])
    [check] = result.gate["new_species"]
    assert not check["accepted"] and check["why"].startswith("held-out top-1")
    assert result.candidate.class_names == ["a", "b", "c"]
    assert result.candidate.head.output_shape[-1] == 3 and len(result.candidate.centroids) == 3


def test_a_new_species_without_held_out_photos_waits():
    serving, base, _ = tiny_model()
    centre = np.random.default_rng(9).normal(0, 1, FEATURE_DIM)
    labelled = new_species_photos(centre, label=3, n=4)  # ids 1-4: none held out
    rows = retrain_rows(base, labelled, len(labelled), cap=5)
    result = retrain(serving, base, rows, "tiny-grown", class_names=["a", "b", "c", "tulip"])
    assert result.gate["new_species"][0]["why"] == "no held-out photos yet"
    assert result.candidate.class_names == ["a", "b", "c"]


def test_cutting_outputs_keeps_the_ranking_of_the_others():
    serving, _, x = tiny_model()
    rows = x[:10].astype(np.float32)
    full = serving.head.predict(rows, verbose=0)
    cut = without_classes(serving.head, [0, 2]).predict(rows, verbose=0)
    expected = full[:, [0, 2]] / full[:, [0, 2]].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, rtol=1e-4, atol=1e-6)


def test_ten_users_teaching_two_new_species_in_turn_get_them_promoted():
    """Five users teach "tulip" and five others "freesia", 60 photos of each, all ten taking
    turns: photo ids divisible by five fell on two of them; the keyed hash spreads the held-out
    photos over all ten, enough for the gate to promote the grown model."""
    serving, base, _ = tiny_model()
    rng = np.random.default_rng(11)
    centres = rng.normal(0, 1, (2, FEATURE_DIM))  # far from the three known species
    labelled = []
    for i in range(1, 121):
        user = (i - 1) % 10  # users 0-4 teach tulip (3), 5-9 freesia (4)
        label = 3 + user // 5
        features = centres[label - 3] + rng.normal(0, 0.1, (VIEWS, FEATURE_DIM))
        labelled.append(LabelledPhoto(i, 200 + user, features.astype(np.float32), label))
    assert {(i - 1) % 10 for i in range(1, 121) if i % 5 == 0} == {4, 9}  # the old choice
    assert sum(held_out(i) for i in range(1, 121)) == 25
    rows = retrain_rows(base, labelled, len(labelled), cap=5)
    names = ["a", "b", "c", "tulip", "freesia"]
    result = retrain(serving, base, rows, "tiny-two-species", class_names=names)
    assert result.promote, result.gate
    assert (result.after["feedback_holdout"], result.after["feedback_holdout_users"]) == (25, 10)
    checks = {
        c["species"]: (c["accepted"], c["heldout"], c["right"]) for c in result.gate["new_species"]
    }
    assert checks == {"tulip": (True, 11, 11), "freesia": (True, 14, 14)}
    assert (result.before["feedback_top1"], result.after["feedback_top1"]) == (0.0, 1.0)
    candidate = result.candidate
    assert candidate.class_names == names and len(candidate.centroids) == 5
    probes = centres.astype(np.float32)
    assert candidate.head.predict(probes, verbose=0).argmax(axis=1).tolist() == [3, 4]
