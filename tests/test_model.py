"""The write-up's sanity checklist: shapes, preprocessing, overfitting a batch, frozen backbone."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import OXFORD

from model_training.data import read_split
from model_training.features import compute_features
from model_training.model import (
    FEATURE_DIM,
    ViewStack,
    build_head,
    compose,
    feature_extractor,
    head_probabilities,
    imagenet_backbone,
)
from model_training.photos import read_photo
from model_training.train import RECIPES, train_head
from model_training.views import TRAIN_VIEWS, VIEWS, box, view_images

rng = np.random.default_rng(0)


def random_images(n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def test_scaling_equals_keras_preprocess_input() -> None:
    images = random_images(2).astype("float32")
    ours = keras.layers.Rescaling(1 / 127.5, -1.0)(images)
    extractor = feature_extractor(("full",))
    scaling = extractor.get_layer("scaling")
    expected = keras.applications.mobilenet_v2.preprocess_input(images.copy())
    np.testing.assert_allclose(np.asarray(scaling(images)), expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-6)
    assert expected.min() >= -1.0 and expected.max() <= 1.0


def test_views_full_is_the_image_and_flip_mirrors_it() -> None:
    images = random_images(2)
    stacked = np.asarray(ViewStack(("full", "full-flip", "centre80"))(images))
    assert stacked.shape == (6, 224, 224, 3)
    np.testing.assert_allclose(stacked[0], images[0], atol=1e-3)
    np.testing.assert_allclose(stacked[1], images[0][:, ::-1], atol=1e-3)
    np.testing.assert_allclose(stacked[3], images[1], atol=1e-3)
    assert not np.allclose(stacked[2], images[0], atol=5)
    assert len(VIEWS) == 24


def test_views_sample_crop_and_resize_points() -> None:
    """ViewStack (training and the feature cache) samples what tf.image.crop_and_resize did
    before it, and serving's numpy views what ViewStack does: cached features match served."""
    import tensorflow as tf

    images = random_images(2)
    stacked = np.asarray(ViewStack(TRAIN_VIEWS)(images))
    boxes = np.tile([box(VIEWS[name]) for name in TRAIN_VIEWS], (2, 1)).astype(np.float32)
    crops = tf.image.crop_and_resize(
        images.astype(np.float32), boxes, np.repeat([0, 1], len(TRAIN_VIEWS)), (224, 224)
    ).numpy()
    flips = np.tile([VIEWS[name].flip for name in TRAIN_VIEWS], 2)
    crops[flips] = crops[flips][:, :, ::-1]
    np.testing.assert_allclose(stacked, crops, atol=1e-3)
    np.testing.assert_allclose(view_images(images, TRAIN_VIEWS), stacked, atol=1e-4)


def test_shapes_through_the_network() -> None:
    views = ("full", "centre80", "topleft90")
    features = feature_extractor(views).predict_on_batch(random_images(3))
    assert features.shape == (3, 3, FEATURE_DIM)
    assert np.all(features >= 0)  # pooled ReLU6 activations
    head = build_head(7)
    probs = np.asarray(compose(head, views, "mobilenet_v2")(random_images(2)))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_composed_model_equals_head_on_cached_features(classifier, sample_photos) -> None:
    images = np.stack([read_photo(path).image for path, _, _ in sample_photos[:6]])
    views = tuple(classifier.artifact.metadata.serve_views)
    encoded = [path.read_bytes() for path, _, _ in sample_photos[:6]]
    features = compute_features(encoded, views, classifier.artifact.metadata.scaling)
    from_features = head_probabilities(classifier.artifact.head, features)
    composed = classifier.probabilities(images)
    np.testing.assert_allclose(composed, from_features, atol=1e-5)


@pytest.fixture(scope="module")
def few_oxford_photos():
    photos = read_split(OXFORD, "train")
    pick = np.concatenate([np.flatnonzero(photos.labels == c)[:2] for c in range(10)])
    encoded = [photos.encoded[i] for i in pick]
    return encoded, photos.labels[pick]


def test_small_batch_overfits_to_full_train_accuracy(few_oxford_photos) -> None:
    encoded, labels = few_oxford_photos
    features = compute_features(encoded, ("full",), "mobilenet_v2")
    recipe = RECIPES["writeup"]
    fast = type(recipe)(
        **{**recipe.as_dict(), "learning_rate": 1e-2, "max_epochs": 60, "patience": 60}
    )
    trained = train_head(102, (features, labels), (features, labels), fast, seed=0)
    probs = head_probabilities(trained.head, features)
    assert (probs.argmax(axis=1) == labels).mean() == 1.0


def test_frozen_backbone_is_unchanged_by_training(few_oxford_photos) -> None:
    encoded, labels = few_oxford_photos
    from model_training.data import decoded_images

    images = np.concatenate(list(decoded_images(encoded[:8]).as_numpy_iterator()))
    backbone = imagenet_backbone()
    before = [w.numpy().copy() for w in backbone.weights]  # BatchNorm moving stats included
    head = build_head(102)
    head_before = [w.numpy().copy() for w in head.weights]
    model = compose(head, ("full",), "mobilenet_v2")
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(images, labels[:8], epochs=2, batch_size=4, verbose=0)
    assert not backbone.trainable and not backbone.trainable_weights
    for old, new in zip(before, backbone.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    assert any(
        not np.allclose(o, n.numpy()) for o, n in zip(head_before, head.weights, strict=True)
    )
