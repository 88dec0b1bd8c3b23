"""Retrain the head from users' labels: pure training and the promotion gate (no database here).

The candidate starts from the serving head's weights and is fitted for a few epochs on the base
data set's cached features (train + val, the default recipe's views) plus the users' labelled
photos (their stored serving-view features: the backbone never runs again). Warm-starting keeps
the candidate close to a model already known to be good, so a few epochs suffice.

Each user's photos together weigh at most `max_photos_per_user` photos, so one person labelling
200 sunflowers as roses counts like a handful of photos against the base set's real sunflowers.
A fixed fifth of the feedback (by photo id) is held out to score old and new head alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np

from model_training.artifact import ModelArtifact
from model_training.data import read_split
from model_training.features import FeatureCache, split_features
from model_training.model import FEATURE_DIM, build_head, head_probabilities
from model_training.views import view_positions

HOLDOUT_EVERY = 5  # photo ids divisible by this are held out of training for the gate
MAX_TEST_DROP = 0.005  # the gate: base test top-1 may fall by at most half a point


@dataclass(frozen=True)
class BaseData:
    train_x: np.ndarray  # train + val, (photos, train views, dim)
    train_y: np.ndarray
    val_x: np.ndarray  # (photos, serving views, dim)
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass(frozen=True)
class FeedbackData:
    features: np.ndarray  # (photos, serving views, dim)
    labels: np.ndarray
    user_ids: np.ndarray
    photo_ids: np.ndarray

    def holdout(self) -> np.ndarray:
        """Deterministic: the same photo is always on the same side, whatever else arrives."""
        return self.photo_ids % HOLDOUT_EVERY == 0


@dataclass(frozen=True)
class RetrainOptions:
    epochs: int = 3
    learning_rate: float = 1e-4
    batch_size: int = 256
    max_photos_per_user: int = 5
    seed: int = 0


@dataclass
class RetrainResult:
    candidate: ModelArtifact
    before: dict[str, float]
    after: dict[str, float]
    promote: bool
    seconds: float


def load_base(
    data_root: str | Path,
    cache_dir: str | Path,
    serving: ModelArtifact,
    train_views: tuple[str, ...],
) -> BaseData:
    """The base data set's cached features; photos missing from the cache are computed once."""
    cache = FeatureCache(cache_dir, serving.metadata.scaling)
    serve_views = tuple(serving.metadata.serve_views)
    splits = {s: read_split(data_root, s, serving.class_names) for s in ("train", "val", "test")}
    train_x = np.concatenate(
        [split_features(splits[s], train_views, cache, s) for s in ("train", "val")]
    )
    serve_index = view_positions(train_views, serve_views)
    val_x = train_x[len(splits["train"]) :][:, serve_index]
    return BaseData(
        train_x=train_x,
        train_y=np.concatenate([splits["train"].labels, splits["val"].labels]),
        val_x=val_x,
        val_y=splits["val"].labels,
        test_x=split_features(splits["test"], serve_views, cache, "test"),
        test_y=splits["test"].labels,
    )


def user_weights(user_ids: np.ndarray, cap: int) -> np.ndarray:
    """Per-photo weights so that no user's photos add up to more than `cap` photos."""
    _, inverse, counts = np.unique(user_ids, return_inverse=True, return_counts=True)
    return np.minimum(1.0, cap / counts)[inverse]


def _training_rows(
    base: BaseData, feedback: FeedbackData, cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per photo and view; a photo's rows share its weight (1, or less under the cap).

    The rows are written straight into one array: with 100k feedback photos every copy is GBs.
    """
    train = ~feedback.holdout()
    n_base, base_views = base.train_x.shape[:2]
    n_feedback, feedback_views = int(train.sum()), feedback.features.shape[1]
    x = np.empty((n_base * base_views + n_feedback * feedback_views, FEATURE_DIM), np.float32)
    x[: n_base * base_views] = base.train_x.reshape(-1, FEATURE_DIM)
    np.compress(
        train,
        feedback.features,
        axis=0,
        out=x[n_base * base_views :].reshape(n_feedback, feedback_views, FEATURE_DIM),
    )
    y = np.concatenate(
        [np.repeat(base.train_y, base_views), np.repeat(feedback.labels[train], feedback_views)]
    )
    weights = user_weights(feedback.user_ids[train], cap)
    w = np.concatenate(
        [
            np.full(n_base * base_views, 1 / base_views),
            np.repeat(weights / feedback_views, feedback_views),
        ]
    ).astype(np.float32)
    # Scale so a mean row weighs one: the learning rate then means what it says.
    return x, y, w * (len(w) / w.sum())


def fit_candidate(
    serving: ModelArtifact, base: BaseData, feedback: FeedbackData, options: RetrainOptions
) -> keras.Model:
    keras.utils.set_random_seed(options.seed)
    x, y, w = _training_rows(base, feedback, options.max_photos_per_user)
    head = build_head(len(serving.class_names))
    head.set_weights(serving.head.get_weights())
    head.compile(
        optimizer=keras.optimizers.Adam(options.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    head.fit(x, y, sample_weight=w, batch_size=options.batch_size, epochs=options.epochs, verbose=0)
    return head


def scores(head: keras.Model, base: BaseData, feedback: FeedbackData) -> dict[str, float]:
    """Top-1 on base val and test and on the held-out feedback (1.0 when none is held out)."""
    held = feedback.holdout()

    def top1(x: np.ndarray, y: np.ndarray) -> float:
        if not len(y):
            return 1.0
        return float((head_probabilities(head, x).argmax(axis=1) == y).mean())

    return {
        "val_top1": top1(base.val_x, base.val_y),
        "test_top1": top1(base.test_x, base.test_y),
        "feedback_top1": top1(feedback.features[held], feedback.labels[held]),
        "feedback_holdout": int(held.sum()),
        "feedback_train": int((~held).sum()),
    }


def passes_gate(before: dict[str, float], after: dict[str, float]) -> bool:
    return (
        after["test_top1"] >= before["test_top1"] - MAX_TEST_DROP
        and after["feedback_top1"] >= before["feedback_top1"]
    )


def retrain(
    serving: ModelArtifact,
    base: BaseData,
    feedback: FeedbackData,
    version: str,
    options: RetrainOptions,
) -> RetrainResult:
    started = time.perf_counter()
    head = fit_candidate(serving, base, feedback, options)
    before, after = scores(serving.head, base, feedback), scores(head, base, feedback)
    seconds = round(time.perf_counter() - started, 1)
    # Thresholds and centroids are kept: the backbone and the species are the same.
    metadata = replace(
        serving.metadata,
        version=version,
        data_fingerprint=f"{serving.metadata.data_fingerprint}+feedback:{len(feedback.labels)}",
        recipe={"retrained_from": serving.metadata.version, **vars(options)},
        metrics={**after, "train_seconds": seconds},
        history={},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    candidate = ModelArtifact(head, serving.class_names, metadata, serving.centroids)
    return RetrainResult(candidate, before, after, passes_gate(before, after), seconds)
