"""The honesty model (model_training/honesty.py): the flower score, the species score, the fixed
real-world split, what the model folder carries, and the shipped model's verdicts on a tulip
(no Oxford species) and on non-flower photos from ../shared."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import SHARED, SHIPPED_MODEL

from model_training.abstention import Verdict
from model_training.artifact import load_artifact
from model_training.honesty import (
    HONESTY_FILE,
    HonestyModel,
    fit_flower_model,
    fit_species_space,
    load_honesty,
)
from model_training.photos import read_photo
from model_training.realworld import read_realworld, split_half

DATA = SHARED / "data"
needs_realworld = pytest.mark.skipif(
    not (DATA / "flower_photos").is_dir(), reason="no ../shared/data/flower_photos"
)


def blobs(rng: np.random.Generator, centres: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(centres)), n)
    return centres[labels] + rng.normal(size=(len(labels), centres.shape[1])), labels


def test_the_species_score_is_low_far_from_every_species() -> None:
    rng = np.random.default_rng(0)
    # Non-negative, like pooled ReLU6 features: the space reads their square roots.
    centres = rng.uniform(0, 12, size=(3, 300))
    rows, labels = blobs(rng, centres, 200)
    known, _ = blobs(rng, centres, 20)
    unknown, _ = blobs(rng, rng.uniform(0, 12, size=(2, 300)), 20)
    for root in (True, False):
        space = fit_species_space(np.maximum(rows, 0), labels, 3, root)
        known_scores, unknown_scores = (
            space.scores(np.maximum(x, 0), np.ones(len(x))) for x in (known, unknown)
        )
        assert unknown_scores.max() < known_scores.min(), root


def test_a_hesitant_head_lowers_the_species_score_by_the_log_of_its_confidence() -> None:
    from model_training.honesty import CONFIDENCE_WEIGHT

    rng = np.random.default_rng(3)
    rows, labels = blobs(rng, rng.uniform(0, 12, size=(3, 50)), 100)
    space = fit_species_space(np.maximum(rows, 0), labels, 3)
    photo = np.maximum(rows[:4], 0)
    sure, hesitant = space.scores(photo, np.ones(4)), space.scores(photo, np.full(4, 0.25))
    np.testing.assert_allclose(sure - hesitant, CONFIDENCE_WEIGHT * np.log(4))
    # The space before: raw rows, the distance alone.
    raw = fit_species_space(np.maximum(rows, 0), labels, 3, root=False)
    np.testing.assert_allclose(raw.scores(photo, np.ones(4)), raw.scores(photo, np.full(4, 0.25)))


def test_the_flower_model_separates_and_its_held_out_scores_are_honest() -> None:
    rng = np.random.default_rng(1)
    flowers = rng.normal(size=(300, 20)) + 2
    others = rng.normal(size=(100, 20)) - 2
    rows = np.concatenate([flowers, others])
    is_flower = np.arange(400) < 300
    group = np.where(is_flower, 0, 2)
    weights, bias, held_out = fit_flower_model(rows, is_flower, group)
    scores = rows @ weights + bias
    assert (scores[is_flower] > 0).mean() > 0.99 and (scores[~is_flower] < 0).mean() > 0.99
    assert held_out.shape == (400,) and (held_out[is_flower] > 0).mean() > 0.95
    # Fitting is repeatable: the product rebuild reproduces the folder.
    again, bias_again, _ = fit_flower_model(rows, is_flower, group)
    np.testing.assert_array_equal(weights, again)
    assert bias == bias_again


def test_the_real_world_split_is_half_of_each_folder_and_fixed() -> None:
    files = [f"{d}/{i}.jpg" for d in ("a", "b") for i in range(11)]
    folders = [f.split("/")[0] for f in files]
    fitting = split_half(files, folders)
    assert fitting[:11].sum() == 5 and fitting[11:].sum() == 5
    np.testing.assert_array_equal(fitting, split_half(list(files), list(folders)))
    shuffled = list(reversed(files))
    # The draw is over the sorted names: the order photos are listed in does not matter.
    np.testing.assert_array_equal(split_half(shuffled, [f[0] for f in shuffled]), fitting[::-1])
    assert not np.array_equal(fitting, split_half(files, folders, seed=14))


def test_the_honesty_model_round_trips_through_its_file(tmp_path) -> None:
    rng = np.random.default_rng(2)
    model = HonestyModel(
        rng.normal(size=8).astype(np.float32),
        0.25,
        rng.normal(size=(8, 3)).astype(np.float32),
        rng.normal(size=(4, 3)).astype(np.float32),
        rng.normal(size=(8, 3)).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
    )
    model.save(tmp_path / HONESTY_FILE)
    loaded = load_honesty(tmp_path)
    assert loaded is not None
    features = rng.uniform(size=(5, 2, 8)).astype(np.float32)
    confidences = rng.uniform(0.1, 1, size=5)
    np.testing.assert_allclose(loaded.flower_scores(features), model.flower_scores(features))
    np.testing.assert_allclose(
        loaded.species_scores(features, confidences), model.species_scores(features, confidences)
    )
    assert loaded.root_normalised and loaded.confidence_weight == model.confidence_weight
    assert load_honesty(tmp_path / "elsewhere") is None
    # A folder from before root-normalising (oxford102-v4): raw rows and the distance alone.
    with np.load(tmp_path / HONESTY_FILE) as stored:
        older = {k: stored[k] for k in stored if k not in ("root_normalised", "confidence_weight")}
    np.savez(tmp_path / HONESTY_FILE, **older)
    old = load_honesty(tmp_path)
    assert old is not None and not old.root_normalised and old.confidence_weight == 0
    before = replace(model, root_normalised=False, confidence_weight=0.0)
    np.testing.assert_allclose(
        old.species_scores(features, confidences), before.species_scores(features, confidences)
    )


def test_the_shipped_folder_carries_the_honesty_model_and_its_cuts() -> None:
    artifact = load_artifact(SHIPPED_MODEL)
    assert artifact.honesty is not None
    assert artifact.honesty.species_means.shape[0] == len(artifact.class_names)
    assert artifact.honesty.flower_weights.shape == (1280,)
    thresholds = json.loads((SHIPPED_MODEL / "metadata.json").read_text())["thresholds"]
    assert {"not_a_flower_below", "unknown_species_below", "unsure_below"} <= set(thresholds)
    # Package data: it must stay small.
    assert (SHIPPED_MODEL / HONESTY_FILE).stat().st_size < 4_000_000


@needs_realworld
def test_the_real_world_halves_cover_every_photo_once() -> None:
    photos = read_realworld(DATA)
    assert len(photos.files) == len(set(photos.files)) > 1000
    for folder in set(photos.folders):
        rows = photos.folders == folder
        assert abs(2 * photos.fitting[rows].sum() - rows.sum()) <= 1
    assert set(photos.folders[~photos.is_flower]) == {"nonflower"}
    assert (photos.oxford_class[photos.folders == "tulips"] == -1).all()


@needs_realworld
def test_a_quick_run_measures_the_first_photos_of_each_folder() -> None:
    photos = read_realworld(DATA)
    measured = photos.measuring_half(limit=3)
    assert not measured.fitting.any()
    rows = list(zip(photos.files, photos.folders, photos.fitting, strict=True))
    for folder in np.unique(photos.folders):
        firsts = [file for file, f, fitting in rows if f == folder and not fitting][:3]
        assert len(firsts) == 3
        chosen = zip(measured.files, measured.folders, strict=True)
        assert [file for file, f in chosen if f == folder] == firsts
    whole = len(photos.measuring_half().files) + len(photos.fitting_half().files)
    assert whole == len(photos.files)


# From the measuring halves (never fitted on); the tulip's head is 97% sure of an Oxford species.
TULIP = "flower_photos/tulips/10163955604_ae0b830975_n.jpg"
NON_FLOWERS = [
    f"nonflower/{name}.jpg"
    for name in (
        "n01614925_bald_eagle",
        "n01688243_frilled_lizard",
        "n01689811_alligator_lizard",
        "n01728572_thunder_snake",
        "n01737021_water_snake",
        "n01744401_rock_python",
    )
]


@needs_realworld
def test_the_photos_below_are_from_the_measuring_halves() -> None:
    photos = read_realworld(DATA)
    fitting = dict(zip(photos.files, photos.fitting, strict=True))
    assert not any(fitting[f] for f in [TULIP, *NON_FLOWERS])


@needs_realworld
def test_a_tulip_is_a_flower_of_a_species_we_do_not_know(classifier) -> None:
    """Tulips are no Oxford species: the head's 97% must not become a confident name."""
    answer = classifier.identify((DATA / TULIP).read_bytes())
    assert answer.verdict is Verdict.UNKNOWN_SPECIES
    assert answer.top5[0].confidence > classifier.rules.unsure_below
    assert answer.flower_score >= classifier.rules.not_a_flower_below
    assert answer.species_score < classifier.rules.unknown_species_below


@needs_realworld
def test_non_flower_photos_are_not_flowers(classifier) -> None:
    answers = classifier.answers([read_photo(DATA / f) for f in NON_FLOWERS])
    assert [a.verdict for a in answers] == [Verdict.NOT_A_FLOWER] * len(NON_FLOWERS)


def test_a_retrained_candidate_keeps_the_honesty_model_and_its_cuts(tmp_path) -> None:
    """Retraining refits the head only: the species and the backbone are the same, so the
    candidate's folder must answer 'not a flower' and 'unknown species' as the serving one."""
    from dataclasses import replace

    from test_retrain_units import ALICE, VIEWS, tiny_model

    from model_training.retrain import LabelledPhoto, retrain, retrain_rows

    serving, base, x = tiny_model()
    rng = np.random.default_rng(4)
    honesty = HonestyModel(
        rng.normal(size=x.shape[1]).astype(np.float32),
        0.5,
        rng.normal(size=(x.shape[1], 4)).astype(np.float32),
        rng.normal(size=(3, 4)).astype(np.float32),
        rng.normal(size=(x.shape[1], 4)).astype(np.float32),
        rng.normal(size=4).astype(np.float32),
    )
    cuts = {"not_a_flower_below": 0.1, "unknown_species_below": -7.0, "unsure_below": 0.4}
    serving = replace(serving, honesty=honesty, metadata=replace(serving.metadata, thresholds=cuts))
    labelled = [
        LabelledPhoto(i, ALICE, np.repeat(x[i % len(x)][None], VIEWS, 0).astype(np.float32), 0)
        for i in range(1, 11)
    ]
    result = retrain(serving, base, retrain_rows(base, labelled, len(labelled), cap=5), "tiny-r1")
    folder = result.candidate.save(tmp_path / "tiny-r1")
    kept = load_artifact(folder)
    assert kept.metadata.thresholds == cuts
    assert kept.honesty is not None
    np.testing.assert_array_equal(kept.honesty.whitening, honesty.whitening)
    np.testing.assert_array_equal(kept.honesty.flower_weights, honesty.flower_weights)
