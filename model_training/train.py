"""Fit the head on cached backbone features: the default recipe and the write-up's, side by side."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import keras
import numpy as np
import tensorflow as tf

from model_training.model import FEATURE_DIM, build_head, head_probabilities
from model_training.views import TRAIN_VIEWS, view_positions


@dataclass(frozen=True)
class Recipe:
    name: str
    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int
    l2: float
    train_views: tuple[str, ...]
    serve_views: tuple[str, ...]
    # After early stopping has picked the epoch count on val, fit again on train + val for that
    # many epochs (hyperparameters still come from val alone; test is never looked at).
    refit_on_train_and_val: bool
    scaling: str = "mobilenet_v2"

    def as_dict(self) -> dict:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    # Every fixed crop of every photo as training data; probabilities averaged over four views.
    "default": Recipe(
        name="default",
        learning_rate=3e-4,
        batch_size=32,
        max_epochs=60,
        patience=6,
        l2=0.0,
        train_views=TRAIN_VIEWS,
        serve_views=("full", "full-flip", "centre80", "centre80-flip"),
        refit_on_train_and_val=True,
    ),
    # The original write-up: one view, Adam 1e-4, batch 32, <= 20 epochs, patience 3.
    "writeup": Recipe(
        name="writeup",
        learning_rate=1e-4,
        batch_size=32,
        max_epochs=20,
        patience=3,
        l2=0.0,
        train_views=("full",),
        serve_views=("full",),
        refit_on_train_and_val=False,
    ),
}


def recipe_named(name: str, scaling: str | None = None) -> Recipe:
    recipe = RECIPES[name]
    return replace(recipe, scaling=scaling) if scaling else recipe


def feature_batches(
    features: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int
) -> tf.data.Dataset:
    """(photos, views, dim) features -> one example per photo and view, batched for Keras."""
    flat = features.reshape(-1, FEATURE_DIM)
    repeated = np.repeat(labels, features.shape[1])
    data = tf.data.Dataset.from_tensor_slices((flat, repeated))
    if shuffle:
        data = data.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _compiled_head(
    n_classes: int,
    recipe: Recipe | RowRecipe,
    ema_momentum: float = 0.0,
    width: int = FEATURE_DIM,
) -> keras.Model:
    """ema_momentum > 0: Keras' moving average of the weights, which replaces them when fitting
    ends (the last steps' noise averaged out); 0: the last step's weights."""
    head = build_head(n_classes, recipe.l2, width)
    averaged = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum > 0 else {}
    head.compile(
        optimizer=keras.optimizers.Adam(recipe.learning_rate, **averaged),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return head


@dataclass
class TrainedHead:
    head: keras.Model
    history: dict[str, list[float]]
    epochs: int
    val_probabilities: np.ndarray  # from the early-stopped head, which never trained on val


def train_head(
    n_classes: int,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    recipe: Recipe,
    seed: int = 0,
    verbose: int = 0,
) -> TrainedHead:
    """Early stopping on val_accuracy picks the epochs; optionally refit on train + val.

    Both feature arrays hold the recipe's train_views; val accuracy is scored on the serving views.
    """
    keras.utils.set_random_seed(seed)  # python, numpy and TensorFlow in one call
    (train_x, train_y), (val_x, val_y) = train, val
    serving = view_positions(recipe.train_views, recipe.serve_views)
    head = _compiled_head(n_classes, recipe)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=recipe.patience, restore_best_weights=True
    )
    fit = head.fit(
        feature_batches(train_x, train_y, recipe.batch_size, shuffle=True, seed=seed),
        validation_data=feature_batches(val_x[:, serving], val_y, 1024, shuffle=False, seed=seed),
        epochs=recipe.max_epochs,
        callbacks=[stopper],
        shuffle=False,  # feature_batches already shuffles with the seed
        verbose=verbose,
    )
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    best_epochs = int(np.argmax(history["val_accuracy"])) + 1
    val_probabilities = head_probabilities(head, val_x[:, serving])
    if not recipe.refit_on_train_and_val:
        return TrainedHead(head, history, best_epochs, val_probabilities)

    keras.utils.set_random_seed(seed)
    head = _compiled_head(n_classes, recipe)
    both_x = np.concatenate([train_x, val_x])
    both_y = np.concatenate([train_y, val_y])
    head.fit(
        feature_batches(both_x, both_y, recipe.batch_size, shuffle=True, seed=seed),
        epochs=best_epochs,
        shuffle=False,
        verbose=verbose,
    )
    return TrainedHead(head, history, best_epochs, val_probabilities)


# --- One row per photo: the product model and its retraining ------------------------------------
@dataclass(frozen=True)
class RowRecipe:
    """Fit the head on one row per photo (its features' mean over the serving views).

    The product model and every retraining use it, so a retrained head is the product model
    fitted again with the users' photos added, not a fine-tune drifting away from it. One row
    per photo keeps a million feedback photos within a few GB (views would multiply that).
    """

    name: str = "rows"
    # Chosen on val (README): batch 32 beat 16 and 64, Adam 1e-3 beat 3e-4 and 5e-4.
    learning_rate: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 8
    l2: float = 0.0
    # The head served is the moving average of its weights over about the last 100 steps. Three
    # seeds, base held-out top-1: 0.936 / 0.930 / 0.932 against 0.925 / 0.925 / 0.924 without;
    # flower_photos 0.386 / 0.376 / 0.370 against 0.400 / 0.384 / 0.360 (README).
    ema_momentum: float = 0.99
    # How many Oxford rows each real-world training photo (garden_photos' fit half) counts as.
    # Weights 0.25 to 2 gave garden measuring-half top-1 0.905-0.918 and flower_photos
    # 0.574-0.591 alike (docs/results.md); 1 is the plainest.
    realworld_weight: float = 1.0
    serve_views: tuple[str, ...] = ("full", "full-flip", "centre80", "centre80-flip")
    scaling: str = "mobilenet_v2"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def recorded(cls, recipe: dict, serve_views: list[str]) -> RowRecipe:
        """The recipe a model folder's metadata records (its seed and epoch count are not part
        of it): retraining and the benchmarks fit again as the model was fitted."""
        known = {k: v for k, v in recipe.items() if k in cls.__annotations__}
        return cls(**{**known, "serve_views": tuple(serve_views)})


def ema_momentum_for(steps_per_epoch: int, momentum: float) -> float:
    """At most about one epoch's steps in the average. Keras' average starts from the initial
    weights and is not bias-corrected, so with a handful of steps a longer one would still hold
    the random start (0 turns it off: one step an epoch)."""
    return min(momentum, 1.0 - 1.0 / steps_per_epoch)


# Steps per epoch stop growing past this many: above it the batch grows instead (a power of two),
# so a million feedback photos take ~1,000 Keras steps an epoch rather than 31,000. Per-step
# overhead (a Python generator feeding tf.data) dominated at batch 32: 100k rows took 641 s.
MAX_STEPS_PER_EPOCH = 1000


def batch_size_for(n_rows: int, smallest: int) -> int:
    """The recipe's batch size, doubled until an epoch fits in MAX_STEPS_PER_EPOCH steps."""
    batch = smallest
    while -(-n_rows // batch) > MAX_STEPS_PER_EPOCH:
        batch *= 2
    return batch


def row_batches(
    x: np.ndarray, y: np.ndarray, w: np.ndarray | None, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled batches of rows, read from `x` as they are needed (it may be float16 and large:
    nothing is copied whole), a new order every epoch."""
    rng = np.random.default_rng(seed)
    weights = np.ones(len(y), np.float32) if w is None else w.astype(np.float32)

    def batches():  # called again by Keras for every epoch
        order = rng.permutation(len(y))
        for start in range(0, len(order), batch_size):
            rows = np.sort(order[start : start + batch_size])
            yield x[rows].astype(np.float32), y[rows], weights[rows]

    signature = (
        tf.TensorSpec((None, x.shape[1]), tf.float32),
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((None,), tf.float32),
    )
    n_batches = -(-len(y) // batch_size)
    data = tf.data.Dataset.from_generator(batches, output_signature=signature)
    # A known length lets Keras count steps per epoch instead of probing for the end.
    return data.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def fit_rows(
    n_classes: int,
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    recipe: RowRecipe,
    epochs: int,
    seed: int = 0,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """A fresh head fitted on (rows, labels, weights), its weights averaged over the last steps
    (RowRecipe.ema_momentum); with `val` (rows, labels), early stopping on its accuracy restores
    the best epoch's weights instead: that run only picks the epoch count."""
    keras.utils.set_random_seed(seed)
    x, y, w = train
    batch_size = batch_size_for(len(y), recipe.batch_size)
    momentum = ema_momentum_for(-(-len(y) // batch_size), recipe.ema_momentum)
    head = _compiled_head(n_classes, recipe, momentum, width=x.shape[1])
    callbacks = []
    validation = None
    if val is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=recipe.patience, restore_best_weights=True
            )
        )
        validation = tf.data.Dataset.from_tensor_slices((val[0].astype(np.float32), val[1])).batch(
            1024
        )
    fit = head.fit(
        row_batches(x, y.astype(np.int64), w, batch_size, seed),
        validation_data=validation,
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,  # row_batches already shuffles with the seed (Keras warned otherwise)
        verbose=0,
    )
    return head, {k: [float(v) for v in values] for k, values in fit.history.items()}
