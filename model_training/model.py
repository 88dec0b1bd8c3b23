"""The network: frozen MobileNetV2 features -> a small trained head, and the two composed.

Training side (Keras): serving runs the backbone converted to LiteRT and the head in numpy
(model_training/lite.py).
"""

from __future__ import annotations

import hashlib
from functools import cache

import keras
import numpy as np
import tensorflow as tf

from model_training.artifact import BackboneUnavailable
from model_training.photos import INPUT_SIZE
from model_training.views import VIEWS, crop

FEATURE_DIM = 1280
DROPOUT = 0.2

# Pixel scaling in front of the backbone. MobileNetV2's ImageNet weights expect [-1, 1]
# (keras.applications.mobilenet_v2.preprocess_input); "unit" is the write-up's x / 255.
SCALINGS: dict[str, tuple[float, float]] = {
    "mobilenet_v2": (1.0 / 127.5, -1.0),
    "unit": (1.0 / 255.0, 0.0),
}


WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@keras.saving.register_keras_serializable(package="flowerbot")
class ViewStack(keras.layers.Layer):
    """(batch, size, size, 3) -> (batch * n_views, size, size, 3): the views of each image in a row.

    The same gathers and lerps at the same points as serving's numpy views
    (model_training.views.crop), which are tf.image.crop_and_resize's points and order: unlike
    crop_and_resize these are LiteRT builtins, so the composed model converts whole
    (`flowerbot export-tflite`). The "full" view of a size x size image is that image exactly.
    """

    def __init__(self, views: tuple[str, ...], size: int = 224, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.views = tuple(views)
        self.size = size

    def call(self, images: tf.Tensor) -> tf.Tensor:
        pixels = tf.cast(images, tf.float32)
        crops = [crop(pixels, VIEWS[name], tf.gather) for name in self.views]
        return tf.reshape(tf.stack(crops, axis=1), (-1, self.size, self.size, 3))

    def get_config(self) -> dict:
        return {**super().get_config(), "views": list(self.views), "size": self.size}


@keras.saving.register_keras_serializable(package="flowerbot")
class GroupViews(keras.layers.Layer):
    """(batch * n_views, dim) -> (batch, n_views, dim): undoes ViewStack's flattening.

    keras.layers.Reshape cannot do this, since it never changes the batch dimension.
    """

    def __init__(self, n_views: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n_views = n_views

    def call(self, features: tf.Tensor) -> tf.Tensor:
        return tf.reshape(features, (-1, self.n_views, features.shape[-1]))

    def get_config(self) -> dict:
        return {**super().get_config(), "n_views": self.n_views}


@cache
def imagenet_backbone() -> keras.Model:
    """MobileNetV2 with its ImageNet weights, frozen; built once per process (it is immutable)."""
    try:
        backbone = keras.applications.MobileNetV2(
            input_shape=(INPUT_SIZE, INPUT_SIZE, 3), include_top=False, weights="imagenet"
        )
    except Exception as err:  # Keras wraps download failures in a bare Exception
        raise BackboneUnavailable(
            f"MobileNetV2's ImageNet weights are not in Keras' cache and could not be downloaded "
            f"({str(err)[:120]}); put {WEIGHTS_FILE} into $KERAS_HOME/models/ "
            f"(default ~/.keras/models/)"
        ) from err
    backbone.trainable = False
    return backbone


def backbone_fingerprint(backbone: keras.Model | None = None) -> str:
    """sha256 of the backbone's weights: features cached under another fingerprint are stale."""
    digest = hashlib.sha256()
    for weight in (backbone or imagenet_backbone()).weights:
        digest.update(np.ascontiguousarray(weight.numpy(), dtype=np.float32).tobytes())
    return digest.hexdigest()


def feature_extractor(views: tuple[str, ...], scaling: str = "mobilenet_v2") -> keras.Model:
    """uint8-range RGB (batch, 224, 224, 3) -> pooled features (batch, n_views, 1280)."""
    scale, offset = SCALINGS[scaling]
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = ViewStack(views, INPUT_SIZE, name="views")(images)
    x = keras.layers.Rescaling(scale, offset, name="scaling")(x)
    # training=False keeps BatchNormalization in inference mode even while the head trains.
    x = imagenet_backbone()(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    features = GroupViews(len(views), name="per_view")(x)
    return keras.Model(images, features, name="features")


def build_head(n_classes: int, l2: float = 0.0, width: int = FEATURE_DIM) -> keras.Model:
    """Pooled features (..., width) -> class probabilities (..., n_classes). The served backbone
    gives FEATURE_DIM; bench/backbone_layers.py tries wider features."""
    features = keras.Input((width,), name="features")
    x = keras.layers.Dropout(DROPOUT, name="dropout")(features)
    regulariser = keras.regularizers.L2(l2) if l2 else None
    probs = keras.layers.Dense(
        n_classes, activation="softmax", kernel_regularizer=regulariser, name="species"
    )(x)
    return keras.Model(features, probs, name="head")


def head_probabilities(head: keras.Model, features: np.ndarray) -> np.ndarray:
    """Mean of the head's probabilities over views: what the composed model computes."""
    photos, views, dim = features.shape
    per_view = head.predict(features.reshape(-1, dim), batch_size=4096, verbose=0)
    return per_view.reshape(photos, views, -1).mean(axis=1)


def compose(head: keras.Model, views: tuple[str, ...], scaling: str) -> keras.Model:
    """Backbone and head as one model: image -> probabilities averaged over the serving views."""
    extractor = feature_extractor(views, scaling)
    per_view = keras.layers.TimeDistributed(head, name="head_per_view")(extractor.output)
    probs = keras.layers.GlobalAveragePooling1D(name="mean_over_views")(per_view)
    return keras.Model(extractor.input, probs, name="flowerbot")
