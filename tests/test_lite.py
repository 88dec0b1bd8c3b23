"""Serving through LiteRT: the same answers as the Keras model, no TensorFlow imported to serve,
the backbone converted once per model folder, the whole model exported for a phone app, and one
line saying what to install where training needs TensorFlow."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import SAMPLES, SHIPPED_MODEL

from model_training.artifact import BACKBONE_FILE, BASE_FILE, load_artifact
from model_training.classifier import FlowerClassifier
from model_training.photos import read_photo

# Everything the bot and `flowerbot identify` import, and one answer through them.
SERVING = f"""
import sys
import bot.app, bot.retraining, bot.handlers.admin, flowerbot.cli
from model_training.classifier import FlowerClassifier
answer = FlowerClassifier.from_folder({str(SHIPPED_MODEL)!r}).identify(
    open({str(next(SAMPLES.glob("*.jpg")))!r}, "rb").read()
)
print("tensorflow" in sys.modules, "keras" in sys.modules, answer.top5[0].species)
"""


@pytest.fixture(scope="module")
def images(sample_photos) -> np.ndarray:
    return np.stack([read_photo(path).image for path, _, _ in sample_photos])


def test_serving_imports_neither_tensorflow_nor_keras() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SERVING], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["False", "False"], result.stdout


def test_litert_answers_equal_the_keras_model(classifier, images) -> None:
    keras_probs = classifier.artifact.composed().predict(images, verbose=0)
    lite_probs = classifier.probabilities(images)
    top5 = np.argsort(-lite_probs, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(top5, np.argsort(-keras_probs, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(lite_probs, keras_probs, atol=0.01)


def test_retrained_folder_links_its_parent_backbone(tmp_path: Path) -> None:
    parent = load_artifact(SHIPPED_MODEL)
    child = replace(parent, metadata=replace(parent.metadata, version="child"))
    folder = child.save(tmp_path / "child")
    assert os.path.samefile(folder / BACKBONE_FILE, SHIPPED_MODEL / BACKBONE_FILE) or (
        (folder / BACKBONE_FILE).read_bytes() == (SHIPPED_MODEL / BACKBONE_FILE).read_bytes()
    )


def test_folder_without_backbone_converts_it_and_answers_the_same(
    classifier, images, tmp_path: Path
) -> None:
    old = shutil.copytree(
        SHIPPED_MODEL, tmp_path / "old", ignore=shutil.ignore_patterns(BACKBONE_FILE, BASE_FILE)
    )
    converted = FlowerClassifier.from_folder(old).probabilities(images)
    np.testing.assert_allclose(converted, classifier.probabilities(images), atol=1e-4)


def test_export_tflite_is_the_whole_model(classifier, images, tmp_path: Path) -> None:
    from flowerbot.cli import main

    out = tmp_path / "flowerbot.tflite"
    assert main(["export-tflite", "--model", str(SHIPPED_MODEL), "--out", str(out)]) == 0
    interpreter = Interpreter(str(out))
    image = interpreter.get_input_details()[0]
    assert image["dtype"] == np.uint8
    interpreter.resize_tensor_input(image["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(image["index"], images)
    interpreter.invoke()
    phone = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(phone, classifier.probabilities(images), atol=0.01)


NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = sys.modules["keras"] = None  # as in a plain install
from flowerbot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_training_without_tensorflow_says_what_to_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "train", "--data", str(tmp_path), "--out", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "flowerbot: train needs TensorFlow: pip install 'flowerbot[train]'"
    )


def test_retraining_without_tensorflow_says_what_to_install(monkeypatch) -> None:
    from bot import retraining

    monkeypatch.setattr(retraining, "has_tensorflow", lambda: False)
    with pytest.raises(retraining.RetrainFailed, match=r"^retraining needs TensorFlow: pip"):
        asyncio.run(retraining.retrain_now(None))  # fails before it touches anything
