"""Shared fixtures. Keras' weight cache must be writable and filled before Keras is imported."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from model_training import defaults

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLOWERBOT_SHARED", ROOT.parent / "shared"))
OXFORD = SHARED / "data" / "oxford102-224"
SAMPLES = SHARED / "samples" / "photos"
SHIPPED_MODEL = defaults.SHIPPED_MODEL_DIR
WEIGHTS = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"

os.environ.setdefault("KERAS_HOME", str(ROOT / ".cache" / "keras"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_cached = Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS
if not _cached.exists() and (SHARED / "keras" / "models" / WEIGHTS).exists():
    _cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / "keras" / "models" / WEIGHTS, _cached)


@pytest.fixture(scope="session")
def sample_photos() -> list[tuple[Path, int, str]]:
    """The real full-size photos: (path, class index, species name)."""
    with (SAMPLES / "labels.csv").open() as f:
        return [
            (SAMPLES / row["file"], int(row["class"]), row["name"]) for row in csv.DictReader(f)
        ]


@pytest.fixture(scope="session")
def classifier():
    from model_training.classifier import FlowerClassifier

    return FlowerClassifier.from_folder(SHIPPED_MODEL)
