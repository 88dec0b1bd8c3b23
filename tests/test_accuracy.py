"""The accuracy goal on the base held-out set, and the shipped (product) model rebuilt from one
command.

The backbone over every photo (about 12,000, four views each) took half an hour of a fresh CI
run. So `flowerbot evaluate` and `flowerbot train` read most features from what the shipped
folder's base.npz holds, each photo's features as the backbone gave them when the model was
trained (float16), put in a feature cache under the photos' keys. Three things keep that honest:

- the backbone runs here on a seeded sample of those photos and must give the rows stored;
- it runs on every photo the recipe needs view by view (Oxford val and garden_photos'
  calibrating half: the "not sure" and "unknown species" cuts average the head over the four
  views, and base.npz keeps each photo's mean), and the rebuilt folder must hold the rows
  shipped;
- it runs on the real-world photos behind the honesty model (in the shared feature cache, which
  test_poisoning.py and bench/ read as well).

The backbone is the one serving runs (model_training/features.py: the shipped backbone.tflite in
LiteRT, about four times Keras' speed); Keras must give the same views on a seeded sample of the
calibrating photos. Every other photo's rows are read only as means by the recipe, so each of its
views is served the stored mean. A few minutes on a fresh machine; later runs reuse the cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import OXFORD, ROOT, SHARED, SHIPPED_MODEL

from flowerbot.cli import main
from model_training import defaults
from model_training.abstention import ONE_VIEW_KEYS, VerdictRules
from model_training.artifact import load_artifact, load_base_rows
from model_training.classifier import FlowerClassifier
from model_training.data import PhotoSet, read_split
from model_training.features import (
    FeatureCache,
    cached_features,
    compute_features,
    keras_features,
)
from model_training.heldout import PER_SPECIES, heldout_ids
from model_training.honesty import load_honesty
from model_training.one_view import one_view_position, scores, verdicts
from model_training.realworld import read_garden, read_realworld
from model_training.workflow import calibration_half, heldout_photos, mean_rows

pytestmark = pytest.mark.slow
# The CLI's cache: FEATURE_CACHE_DIR, or the default one under the repository.
CACHE = Path(os.environ.get("FEATURE_CACHE_DIR", ROOT / defaults.FEATURE_CACHE_DIR))
# Base held-out top-1, backbone frozen. The real-world rows (garden_photos) cost Oxford about one
# point (0.935 -> 0.922) for 0.60 -> 0.92 on garden photos: the floor sits just below that.
MIN_TOP1 = 0.915
GARDEN_FIT_PHOTOS = 1320
# How far a rebuild on another machine may move the flower model (log-odds; see below).
FLOWER_CUT_TOLERANCE = 0.05
FLOWER_SCORE_TOLERANCE = 0.5
# Features stored as float16 (rounded by up to 2^-11 of their value; they run up to about 6)
# against features computed again, on another processor too (float32 noise, 1e-4 seen).
FLOAT16 = {"rtol": 2e-3, "atol": 2e-3}
SAMPLE_SEED = 0
SAMPLE_ROWS = 40  # training photos whose features are computed again
SAMPLE_HELDOUT = 24  # held-out photos, view by view
SAMPLE_CALIBRATING = 48  # calibrating photos whose views Keras computes again
# The same views through LiteRT (XNNPACK) and through Keras: 2.4e-5 apart at most, seen.
LITERT = {"rtol": 1e-4, "atol": 5e-4}


def concatenated(*sets: PhotoSet) -> PhotoSet:
    return PhotoSet(
        [data for s in sets for data in s.encoded],
        np.concatenate([s.labels for s in sets]),
        [i for s in sets for i in s.ids],
        sets[0].class_names,
    )


def selected(photos: PhotoSet, keep: np.ndarray) -> PhotoSet:
    index = np.flatnonzero(keep)
    return PhotoSet(
        [photos.encoded[i] for i in index],
        photos.labels[index],
        [photos.ids[i] for i in index],
        photos.class_names,
    )


class BasePhotos:
    """The photos behind base.npz's rows, in its order (workflow.product_rows): Oxford train,
    test outside the held-out set, val, garden_photos' fitting half; and the held-out photos."""

    def __init__(self) -> None:
        train, val, test = (read_split(OXFORD, s) for s in ("train", "val", "test"))
        held = np.isin(test.ids, list(heldout_ids()))
        garden = read_garden(SHARED / "data").fitting_half()
        garden_set = PhotoSet(garden.encoded, garden.oxford_class, garden.files, train.class_names)
        self.rows = concatenated(train, selected(test, ~held), val, garden_set)
        self.heldout = heldout_photos(test)
        # The photos whose features the recipe reads view by view: its calibration rows.
        self.calibrating = np.concatenate(
            [
                np.zeros(len(train) + (~held).sum(), bool),
                np.ones(len(val), bool),
                calibration_half(garden.oxford_class),
            ]
        )


@pytest.fixture(scope="module")
def photos() -> BasePhotos:
    return BasePhotos()


@pytest.fixture(scope="module")
def stored_cache(tmp_path_factory: pytest.TempPathFactory, photos: BasePhotos) -> Path:
    """A feature cache holding base.npz's rows under their photos' keys: each held-out photo's
    views, and the mean of each training photo (the rebuild test adds the calibrating ones)."""
    shipped = load_artifact(SHIPPED_MODEL).metadata
    views, base = tuple(shipped.serve_views), load_base_rows(SHIPPED_MODEL)
    folder = tmp_path_factory.mktemp("stored-features")
    cache = FeatureCache(folder, shipped.scaling)
    # Four photos are in the data twice (the same bytes, so one key): each key is put once, its
    # views from one source (the cache reads its chunks in no set order).
    keys, held_keys = photos.rows.keys, photos.heldout.keys
    later = {keys[i] for i in np.flatnonzero(photos.calibrating)}
    held = [i for i, key in enumerate(held_keys) if key not in later]
    cache.put([held_keys[i] for i in held], views, base.heldout_x[held])
    later |= set(held_keys)
    stored = [i for i in np.flatnonzero(~photos.calibrating) if keys[i] not in later]
    means = np.repeat(base.train_x[stored, None], len(views), axis=1)
    cache.put([keys[i] for i in stored], views, means)
    return folder


def test_the_backbone_gives_the_features_base_npz_holds(photos) -> None:
    shipped, base = load_artifact(SHIPPED_MODEL).metadata, load_base_rows(SHIPPED_MODEL)
    np.testing.assert_array_equal(base.train_y, photos.rows.labels)
    np.testing.assert_array_equal(base.heldout_y, photos.heldout.labels)
    rng = np.random.default_rng(SAMPLE_SEED)
    rows = np.sort(rng.choice(np.flatnonzero(~photos.calibrating), SAMPLE_ROWS, replace=False))
    held = np.sort(rng.choice(len(photos.heldout), SAMPLE_HELDOUT, replace=False))
    encoded = [photos.rows.encoded[i] for i in rows] + [photos.heldout.encoded[i] for i in held]
    computed = compute_features(encoded, tuple(shipped.serve_views), shipped.scaling)
    np.testing.assert_allclose(mean_rows(computed[:SAMPLE_ROWS]), base.train_x[rows], **FLOAT16)
    np.testing.assert_allclose(computed[SAMPLE_ROWS:], base.heldout_x[held], **FLOAT16)


def test_shipped_model_holds_its_accuracy_on_the_base_heldout_set(tmp_path, stored_cache) -> None:
    model, data = ["--model", str(SHIPPED_MODEL)], ["--data", str(OXFORD)]
    out, cache = ["--out", str(tmp_path)], ["--cache-dir", str(stored_cache)]
    assert main(["evaluate", *model, *data, *out, *cache]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["photos"] == 102 * PER_SPECIES == len(heldout_ids())
    assert metrics["top1"] >= MIN_TOP1
    shipped = load_artifact(SHIPPED_MODEL).metadata.metrics
    # Features computed on another processor may tip a photo near a tie: at most two of 1,224.
    assert metrics["top1"] == pytest.approx(shipped["heldout_top1"], abs=2.5 / metrics["photos"])
    for figure in ("confusion_matrix.png", "reliability.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
    assert 0 <= metrics["ece"] < 0.1


def test_one_command_rebuilds_the_shipped_model(tmp_path, photos, stored_cache) -> None:
    shipped = load_artifact(SHIPPED_MODEL).metadata
    views, computed = tuple(shipped.serve_views), FeatureCache(CACHE, shipped.scaling)
    calibrating = selected(photos.rows, photos.calibrating)
    served = cached_features(calibrating.encoded, calibrating.keys, views, computed, "calibrating")
    sample = np.sort(
        np.random.default_rng(SAMPLE_SEED).choice(len(served), SAMPLE_CALIBRATING, replace=False)
    )
    keras_views = keras_features([calibrating.encoded[i] for i in sample], views, shipped.scaling)
    np.testing.assert_allclose(served[sample], keras_views, **LITERT)
    real = read_realworld(SHARED / "data")
    stored = FeatureCache(stored_cache, shipped.scaling)
    stored.put(calibrating.keys, views, served)
    stored.put(real.keys, views, cached_features(real.encoded, real.keys, views, computed, "real"))

    out = tmp_path / "rebuilt"
    code = main(
        ["train", "--data", str(OXFORD), "--out", str(out), "--cache-dir", str(stored_cache)]
    )
    assert code == 0
    rebuilt = load_artifact(out).metadata
    for key in ("heldout_top1", "heldout_top5", "heldout_macro_f1"):
        assert rebuilt.metrics[key] == pytest.approx(shipped.metrics[key], abs=0.005), key
    assert rebuilt.metrics["heldout_top1"] >= MIN_TOP1
    assert rebuilt.recipe["epochs"] == shipped.recipe["epochs"]
    # What retraining needs travels in the folder, and the held-out photos never train; its rows
    # are the shipped ones, the calibrating photos' computed again here.
    base, shipped_base = load_base_rows(out), load_base_rows(SHIPPED_MODEL)
    assert len(base.heldout_y) == len(heldout_ids())
    assert len(base.train_y) == 8189 - len(heldout_ids()) + GARDEN_FIT_PHOTOS
    np.testing.assert_array_equal(base.train_y, shipped_base.train_y)
    np.testing.assert_allclose(base.train_x, shipped_base.train_x, **FLOAT16)
    np.testing.assert_array_equal(base.heldout_x, shipped_base.heldout_x)
    # The real-world rows train at the recipe's weight, Oxford's at 1.
    assert sorted(set(base.weights.tolist())) == [rebuilt.recipe["realworld_weight"]]
    np.testing.assert_array_equal(np.bincount(base.heldout_y), np.full(102, PER_SPECIES))
    # The honesty model (fitted on ../shared's real-world photos too) and its cuts come back.
    # The flower model's lbfgs stops at its tolerance, so backbone features computed on another
    # processor (float32 noise) move it a little: rebuilt on an AMD machine, weights correlated
    # 0.9998 with the shipped ones, flower log-odds within 0.21 and the cut within 0.005; not
    # one real-world verdict changed. So its scores and verdicts are compared, not its weights.
    assert set(rebuilt.thresholds) == set(shipped.thresholds)
    for key, value in shipped.thresholds.items():
        if key in ONE_VIEW_KEYS:  # quantiles of the rebuilt head's scores: verdicts, below
            continue
        near = FLOWER_CUT_TOLERANCE if key == "not_a_flower_below" else 1e-6
        assert rebuilt.thresholds[key] == pytest.approx(value, rel=1e-4, abs=near), key
    ours, theirs = load_honesty(out), load_honesty(SHIPPED_MODEL)
    assert ours is not None and theirs is not None
    held = base.heldout_x.astype(np.float32)
    real_x = real.features(views, computed)
    cut, shipped_cut = (m.thresholds["not_a_flower_below"] for m in (rebuilt, shipped))
    for rows in (real_x, held):
        mine, shipped_scores = ours.flower_scores(rows), theirs.flower_scores(rows)
        np.testing.assert_allclose(mine, shipped_scores, atol=FLOWER_SCORE_TOLERANCE)
        changed = (mine < cut) != (shipped_scores < shipped_cut)
        assert changed.mean() <= 0.01, f"{changed.sum()} 'not a flower' verdicts changed"
    # Scores, not the whitened means: each direction's sign is the eigensolver's choice. They
    # run from about -40 to 70 and cross zero. Fitted on base.npz's float16 rows rather than the
    # float32 features the shipped space came from, they move by up to 0.03 (float32 noise from
    # another processor: 1e-4); the verdicts they give must stay the same.
    sure = np.ones(len(held))
    mine, shipped_scores = ours.species_scores(held, sure), theirs.species_scores(held, sure)
    np.testing.assert_allclose(mine, shipped_scores, rtol=1e-3, atol=0.1)
    cut, shipped_cut = (m.thresholds["unknown_species_below"] for m in (rebuilt, shipped))
    changed = (mine < cut) != (shipped_scores < shipped_cut)
    assert changed.mean() <= 0.01, f"{changed.sum()} 'unknown species' verdicts changed"
    # The one-view cuts (the answer under overload) give the shipped model the same verdicts.
    shipped_model = FlowerClassifier.from_folder(SHIPPED_MODEL)
    one = scores(shipped_model.model.head, theirs, real_x[:, one_view_position(views)][:, None])
    rules = (VerdictRules.one_view(m.thresholds) for m in (rebuilt, shipped))
    mine, shipped_verdicts = (verdicts(r, *one) for r in rules)
    changed = mine != shipped_verdicts
    assert changed.mean() <= 0.01, f"{changed.sum()} one-view verdicts changed"
