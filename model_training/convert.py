"""Keras -> LiteRT (training side, TensorFlow): the backbone every model folder serves, and the
whole model for a phone app (`flowerbot export-tflite`).

The backbone file holds pixel scaling, the frozen MobileNetV2 and global average pooling; views
and the head run in numpy (model_training/lite.py), so a retrained head needs no conversion.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from model_training.artifact import BACKBONE_FILE, METADATA_FILE, Metadata, ModelArtifact
from model_training.model import SCALINGS, imagenet_backbone
from model_training.photos import INPUT_SIZE

# A representative data set for full-integer quantization: batches of float32 views in 0..255.
Representative = Callable[[], Iterator[list[np.ndarray]]]


def backbone_model(scaling: str) -> keras.Model:
    """float32 views (n, 224, 224, 3) in 0..255 -> pooled features (n, 1280)."""
    scale, offset = SCALINGS[scaling]
    views = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="views")
    x = keras.layers.Rescaling(scale, offset, name="scaling")(views)
    x = imagenet_backbone()(x, training=False)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(views, features, name="backbone")


def to_tflite(
    model: keras.Model, quantize: str = "none", representative: Representative | None = None
) -> bytes:
    """quantize: none (float32), dynamic (int8 weights, float activations) or integer (int8
    weights and activations, calibrated on `representative`; float input and output)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "integer":
        converter.representative_dataset = representative
    with contextlib.redirect_stdout(io.StringIO()):  # Keras lists every captured variable
        return converter.convert()


def backbone_tflite(
    scaling: str, quantize: str = "none", representative: Representative | None = None
) -> bytes:
    return to_tflite(backbone_model(scaling), quantize, representative)


def write_backbone(path: Path, metadata: Metadata, source: Path | None) -> None:
    """The folder's backbone.tflite: linked (or copied) from `source` when that folder's was
    converted from the same backbone weights and scaling, else converted (about 15 s)."""
    if source is not None and same_backbone(source, metadata):
        try:
            os.link(source / BACKBONE_FILE, path)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source / BACKBONE_FILE, path)
        return
    path.write_bytes(backbone_tflite(metadata.scaling))


def same_backbone(folder: Path, metadata: Metadata) -> bool:
    """Whether `folder` holds a backbone.tflite of the backbone and scaling `metadata` names."""
    if not (folder / BACKBONE_FILE).is_file() or not (folder / METADATA_FILE).is_file():
        return False
    theirs = json.loads((folder / METADATA_FILE).read_text())
    return (theirs.get("backbone_fingerprint"), theirs.get("scaling")) == (
        metadata.backbone_fingerprint,
        metadata.scaling,
    )


def whole_model_tflite(artifact: ModelArtifact) -> bytes:
    """The composed model (serving views, backbone, head, mean over views) as one LiteRT file:
    uint8 RGB (n, 224, 224, 3) -> probabilities (n, n_classes)."""
    composed = artifact.composed()
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="uint8", name="image")
    return to_tflite(keras.Model(images, composed(images), name="flowerbot"))
