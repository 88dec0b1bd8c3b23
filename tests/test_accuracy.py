"""The accuracy goal on the base held-out set, and the shipped (product) model rebuilt from one
command.

Minutes long (the backbone runs over every photo once, four views; later runs reuse the cache).
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
from model_training.artifact import load_artifact, load_base_rows
from model_training.features import FeatureCache
from model_training.heldout import PER_SPECIES, heldout_ids
from model_training.honesty import load_honesty
from model_training.realworld import read_realworld

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


def test_shipped_model_holds_its_accuracy_on_the_base_heldout_set(tmp_path) -> None:
    model, data = ["--model", str(SHIPPED_MODEL)], ["--data", str(OXFORD)]
    code = main(["evaluate", *model, *data, "--out", str(tmp_path), "--cache-dir", str(CACHE)])
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["photos"] == 102 * PER_SPECIES == len(heldout_ids())
    assert metrics["top1"] >= MIN_TOP1
    shipped = load_artifact(SHIPPED_MODEL).metadata.metrics
    # Features computed on another processor may tip a photo near a tie: at most two of 1,224.
    assert metrics["top1"] == pytest.approx(shipped["heldout_top1"], abs=2.5 / metrics["photos"])
    for figure in ("confusion_matrix.png", "reliability.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
    assert 0 <= metrics["ece"] < 0.1


def test_one_command_rebuilds_the_shipped_model(tmp_path) -> None:
    out = tmp_path / "rebuilt"
    code = main(["train", "--data", str(OXFORD), "--out", str(out), "--cache-dir", str(CACHE)])
    assert code == 0
    rebuilt, shipped = load_artifact(out).metadata, load_artifact(SHIPPED_MODEL).metadata
    for key in ("heldout_top1", "heldout_top5", "heldout_macro_f1"):
        assert rebuilt.metrics[key] == pytest.approx(shipped.metrics[key], abs=0.005), key
    assert rebuilt.metrics["heldout_top1"] >= MIN_TOP1
    assert rebuilt.recipe["epochs"] == shipped.recipe["epochs"]
    # What retraining needs travels in the folder, and the held-out photos never train.
    base = load_base_rows(out)
    assert len(base.heldout_y) == len(heldout_ids())
    assert len(base.train_y) == 8189 - len(heldout_ids()) + GARDEN_FIT_PHOTOS
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
        near = FLOWER_CUT_TOLERANCE if key == "not_a_flower_below" else 1e-6
        assert rebuilt.thresholds[key] == pytest.approx(value, rel=1e-4, abs=near), key
    ours, theirs = load_honesty(out), load_honesty(SHIPPED_MODEL)
    assert ours is not None and theirs is not None
    held = base.heldout_x.astype(np.float32)
    real = read_realworld(SHARED / "data")
    real_x = real.features(tuple(rebuilt.serve_views), FeatureCache(CACHE, rebuilt.scaling))
    cut, shipped_cut = (m.thresholds["not_a_flower_below"] for m in (rebuilt, shipped))
    for rows in (real_x, held):
        mine, shipped_scores = ours.flower_scores(rows), theirs.flower_scores(rows)
        np.testing.assert_allclose(mine, shipped_scores, atol=FLOWER_SCORE_TOLERANCE)
        changed = (mine < cut) != (shipped_scores < shipped_cut)
        assert changed.mean() <= 0.01, f"{changed.sum()} 'not a flower' verdicts changed"
    # Scores, not the whitened means: each direction's sign is the eigensolver's choice. They
    # run from about -40 to 70 and cross zero, so float32 noise from features computed on
    # another machine (1e-4 seen in CI) needs an absolute tolerance beside the relative one.
    sure = np.ones(len(held))
    np.testing.assert_allclose(
        ours.species_scores(held, sure), theirs.species_scores(held, sure), rtol=1e-3, atol=1e-2
    )
