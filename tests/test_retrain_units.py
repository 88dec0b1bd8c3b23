"""Retraining's building blocks without the bot: the database lock, the per-user cap, and the
stored features of labelled photos arriving unchanged as training rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.retraining import feedback_arrays
from model_training.model import FEATURE_DIM
from model_training.retrain import (
    HOLDOUT_EVERY,
    BaseData,
    FeedbackData,
    _training_rows,
    user_weights,
)
from storage import (
    Database,
    add_photo,
    add_prediction,
    ensure_user,
    labelled_examples,
    lock_holder,
    record_feedback,
    release_lock,
    take_lock,
)


def test_the_lock_is_exclusive_and_expires(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'lock.sqlite'}")
    db.upgrade()
    now, ttl = datetime.now(UTC), timedelta(minutes=5)
    with db.session() as session:
        assert take_lock(session, "a", now, ttl)
    with db.session() as session:
        assert not take_lock(session, "b", now, ttl)
        release_lock(session, "b")  # not b's to release
    with db.session() as session:
        assert not take_lock(session, "b", now + timedelta(minutes=4), ttl)
        assert take_lock(session, "b", now + timedelta(minutes=6), ttl)  # a's has expired
        assert lock_holder(session) == "b"
        release_lock(session, "b")
        assert lock_holder(session) is None
    db.dispose()


def test_user_weights_cap_each_users_total():
    weights = user_weights(np.array([1] * 200 + [2, 2, 3]), cap=10)
    assert weights[:200].sum() == pytest.approx(10)
    assert weights[200:].tolist() == [1, 1, 1]


def test_stored_features_become_the_feedback_training_rows(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'labels.sqlite'}")
    db.upgrade()
    rng = np.random.default_rng(0)
    features = rng.random((HOLDOUT_EVERY + 1, 4, FEATURE_DIM)).astype(np.float32)
    with db.session() as session:
        ensure_user(session, 7)
        for n, photo_features in enumerate(features):
            photo = add_photo(session, 7, 7, n, f"{n:064x}", b"jpeg", photo_features, (640, 480))
            prediction = add_prediction(
                session, photo.id, "v1", [{"species": "a", "index": 0, "confidence": 1.0}], 5.0
            )
            record_feedback(session, photo.id, prediction.id, 7, n % 3, f"species {n % 3}")
    with db.session() as session:
        arrays = feedback_arrays(labelled_examples(session))
    db.dispose()
    photo_ids = np.arange(1, len(features) + 1)  # SQLite's ids, in insertion order
    np.testing.assert_array_equal(arrays["photo_ids"], photo_ids)
    np.testing.assert_array_equal(arrays["labels"], np.arange(len(features)) % 3)
    np.testing.assert_array_equal(arrays["user_ids"], [7] * len(features))
    assert arrays["features"].dtype == np.float32
    np.testing.assert_array_equal(arrays["features"], features)

    feedback = FeedbackData(**arrays)
    held = feedback.holdout()
    assert held.tolist() == [i % HOLDOUT_EVERY == 0 for i in photo_ids]
    base_x = rng.random((2, 3, FEATURE_DIM)).astype(np.float32)
    empty = np.empty((0, 4, FEATURE_DIM), np.float32)
    base = BaseData(base_x, np.array([5, 6]), empty, np.empty(0), empty, np.empty(0))
    x, y, w = _training_rows(base, feedback, cap=100)
    trained = features[~held]
    assert x.shape == (2 * 3 + trained.shape[0] * 4, FEATURE_DIM)
    np.testing.assert_array_equal(x[:6], base_x.reshape(-1, FEATURE_DIM))
    np.testing.assert_array_equal(x[6:], trained.reshape(-1, FEATURE_DIM))
    assert y.tolist() == [5, 5, 5, 6, 6, 6, *np.repeat(arrays["labels"][~held], 4).tolist()]
    # Every photo weighs the same, whatever its number of views; the mean row weighs one.
    photo_weights = [w[:3].sum(), w[3:6].sum(), *w[6:].reshape(-1, 4).sum(axis=1)]
    np.testing.assert_allclose(photo_weights, photo_weights[0], rtol=1e-6)
    assert w.mean() == pytest.approx(1.0)


def test_no_labels_yet_gives_empty_arrays():
    arrays = feedback_arrays([])
    assert arrays["features"].shape == (0, 0, FEATURE_DIM)
    assert all(len(arrays[k]) == 0 for k in ("labels", "user_ids", "photo_ids"))
