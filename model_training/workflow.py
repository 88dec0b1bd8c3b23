"""Train -> artifact -> evaluate on a data set laid out as <root>/{train,val,test}/."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from model_training.abstention import (
    MIN_PHOTO_SIDE,
    class_centroids,
    flower_scores,
    not_a_flower_cut,
    unsure_cut,
)
from model_training.artifact import BaseRows, Metadata, ModelArtifact
from model_training.data import PhotoSet, read_split
from model_training.evaluate import classification_metrics
from model_training.features import FeatureCache, split_features
from model_training.heldout import heldout_ids
from model_training.honesty import (
    HonestyModel,
    fit_flower_model,
    fit_species_space,
    unknown_species_cut,
)
from model_training.honesty import not_a_flower_cut as flower_log_odds_cut
from model_training.model import head_probabilities
from model_training.realworld import FLOWER_PHOTOS, NONFLOWER, read_realworld
from model_training.train import Recipe, RowRecipe, fit_rows, train_head
from model_training.views import view_positions


def train_on_dataset(
    data_root: str | Path,
    recipe: Recipe,
    cache_dir: str | Path,
    version: str,
    class_names: list[str] | None = None,
    seed: int = 0,
) -> ModelArtifact:
    started = time.perf_counter()
    cache = FeatureCache(cache_dir, recipe.scaling)
    train = read_split(data_root, "train", class_names)
    val = read_split(data_root, "val", train.class_names)
    for split, photos in (("train", train), ("val", val)):
        if not photos.labelled():
            raise ValueError(f"{data_root}/{split}: every photo needs a class to train on")
    train_x = split_features(train, recipe.train_views, cache, "train")
    val_x = split_features(val, recipe.train_views, cache, "val")
    n_classes = len(train.class_names)
    trained = train_head(
        n_classes, (train_x, train.labels), (val_x, val.labels), recipe, seed, verbose=1
    )
    # Abstention thresholds come from models that never saw val; the shipped centroids may.
    serving = view_positions(recipe.train_views, recipe.serve_views)
    train_serve, val_serve = train_x[:, serving], val_x[:, serving]
    train_centroids = class_centroids(train_serve, train.labels, n_classes)
    val_flower_scores = flower_scores(val_serve, train_centroids)
    if recipe.refit_on_train_and_val:
        both = np.concatenate([train_serve, val_serve]), np.concatenate([train.labels, val.labels])
        centroids = class_centroids(*both, n_classes)
    else:
        centroids = train_centroids
    # The refit head saw val, so val metrics come from the early-stopping run's history.
    metadata = Metadata(
        version=version,
        classes=len(train.class_names),
        scaling=recipe.scaling,
        serve_views=list(recipe.serve_views),
        data_fingerprint=_fingerprint(train, val, recipe.refit_on_train_and_val),
        recipe={**recipe.as_dict(), "seed": seed, "epochs": trained.epochs},
        metrics={
            "val_accuracy_early_stopping": max(trained.history["val_accuracy"]),
            "train_seconds": round(time.perf_counter() - started, 1),
        },
        history=trained.history,
        thresholds={
            "not_a_flower_below": not_a_flower_cut(val_flower_scores),
            "unsure_below": unsure_cut(trained.val_probabilities, val.labels),
            "min_photo_side": MIN_PHOTO_SIDE,
        },
    )
    return ModelArtifact(trained.head, train.class_names, metadata, centroids)


def evaluate_on_split(
    artifact: ModelArtifact, data_root: str | Path, split: str, cache_dir: str | Path
) -> dict[str, object]:
    """Metrics on a split; "heldout" is the base held-out set (within test)."""
    if split == HELDOUT_SPLIT:
        photos = heldout_photos(read_split(data_root, "test", artifact.class_names))
    else:
        photos = read_split(data_root, split, artifact.class_names)
    if not photos.labelled():
        raise ValueError(f"{data_root}/{split} has unlabelled photos: nothing to score against")
    views = tuple(artifact.metadata.serve_views)
    features = split_features(
        photos, views, FeatureCache(cache_dir, artifact.metadata.scaling), split
    )
    probabilities = head_probabilities(artifact.head, features)
    return {
        "split": split,
        **classification_metrics(probabilities, photos.labels, artifact.class_names),
    }


def heldout_photos(test: PhotoSet) -> PhotoSet:
    keep = np.isin(test.ids, list(heldout_ids()))
    return PhotoSet(
        [data for data, k in zip(test.encoded, keep, strict=True) if k],
        test.labels[keep],
        [i for i, k in zip(test.ids, keep, strict=True) if k],
        test.class_names,
    )


def _fingerprint(train: PhotoSet, val: PhotoSet, both: bool) -> str:
    return f"train:{train.fingerprint[:16]}" + (f"+val:{val.fingerprint[:16]}" if both else "")


HELDOUT_SPLIT = "heldout"


def mean_rows(features: np.ndarray) -> np.ndarray:
    """(photos, views, dim) -> (photos, dim): one training row per photo."""
    return features.mean(axis=1)


def train_product(
    data_root: str | Path,
    recipe: RowRecipe,
    cache_dir: str | Path,
    version: str,
    class_names: list[str] | None = None,
    seed: int = 0,
    realworld: str | Path | None = None,
) -> ModelArtifact:
    """The product model: every labelled photo of train, val and test except the base held-out
    set (model_training/heldout.py), one row per photo.

    Val still picks the epoch count (early stopping while fitting on the rest) and the honesty
    thresholds; then the head is fitted again on everything for that many epochs. The
    real-world photos (`realworld`, default: beside the data set, e.g. ../shared/data) calibrate
    "not a flower"; without them the folder gets the older centroid rule.
    """
    started = time.perf_counter()
    cache = FeatureCache(cache_dir, recipe.scaling)
    views = recipe.serve_views
    splits = {s: read_split(data_root, s, class_names) for s in ("train", "val", "test")}
    names = splits["train"].class_names
    features = {s: split_features(p, views, cache, s) for s, p in splits.items()}
    held = np.isin(splits["test"].ids, list(heldout_ids()))
    fit_x = np.concatenate([features["train"], features["test"][~held]])
    fit_y = np.concatenate([splits["train"].labels, splits["test"].labels[~held]])
    val_x, val_y = features["val"], splits["val"].labels
    n_classes = len(names)

    early, history = fit_rows(
        n_classes,
        (mean_rows(fit_x), fit_y, None),
        recipe,
        recipe.max_epochs,
        seed,
        val=(mean_rows(val_x), val_y),
    )
    epochs = int(np.argmax(history["val_accuracy"])) + 1
    # Thresholds from what never trained on val: the early-stopped head, centroids without val.
    val_probabilities = head_probabilities(early, val_x)
    unsure_below = unsure_cut(val_probabilities, val_y)
    all_x, all_y = np.concatenate([fit_x, val_x]), np.concatenate([fit_y, val_y])
    head, _ = fit_rows(n_classes, (mean_rows(all_x), all_y, None), recipe, epochs, seed)

    heldout_x, heldout_y = features["test"][held], splits["test"].labels[held]
    honesty, honesty_thresholds = fit_honesty(
        (fit_x, fit_y),
        (val_x, val_probabilities.max(axis=1)),
        unsure_below,
        (all_x, all_y),
        n_classes,
        (cache, views),
        Path(data_root).parent if realworld is None else realworld,
    )
    report = classification_metrics(head_probabilities(head, heldout_x), heldout_y, names)
    metadata = Metadata(
        version=version,
        classes=n_classes,
        scaling=recipe.scaling,
        serve_views=list(views),
        data_fingerprint="+".join(f"{s}:{p.fingerprint[:16]}" for s, p in splits.items())
        + f"-heldout:{int(held.sum())}",
        recipe={**recipe.as_dict(), "seed": seed, "epochs": epochs},
        metrics={
            "val_accuracy_early_stopping": max(history["val_accuracy"]),
            "heldout_photos": int(held.sum()),
            **{f"heldout_{k}": report[k] for k in ("top1", "top5", "macro_f1", "ece")},
            "train_seconds": round(time.perf_counter() - started, 1),
        },
        history=history,
        thresholds={
            **honesty_thresholds,
            "unsure_below": unsure_below,
            "min_photo_side": MIN_PHOTO_SIDE,
        },
    )
    base = BaseRows(mean_rows(all_x), all_y, heldout_x, heldout_y)
    centroids = class_centroids(all_x, all_y, n_classes)
    return ModelArtifact(head, names, metadata, centroids, base, honesty)


def fit_honesty(
    fit: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],  # features, and the head's top-1 confidences
    unsure_below: float,
    everything: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    features: tuple[FeatureCache, tuple[str, ...]],
    realworld: str | Path,
) -> tuple[HonestyModel | None, dict[str, float]]:
    """The honesty model and its cuts; (None, the centroid cut) without real-world photos.

    Each cut comes from scores of photos the scoring model was not fitted on: the species cut
    from val under means and covariance of the fitting rows, the flower cut from cross-validated
    log-odds of the real-world fitting half. Served: both refitted on everything.
    """
    (fit_x, fit_y), (val_x, val_confidences), (all_x, all_y) = fit, val, everything
    folder = Path(realworld)
    if not (folder / FLOWER_PHOTOS).is_dir() or not (folder / NONFLOWER).is_dir():
        val_scores = flower_scores(val_x, class_centroids(fit_x, fit_y, n_classes))
        return None, {"not_a_flower_below": not_a_flower_cut(val_scores)}
    photos = read_realworld(folder)
    chosen = photos.fitting
    real_x = mean_rows(photos.features(features[1], features[0])[chosen])
    # Groups weigh the same in total: Oxford flowers, real-world flowers, non-flowers.
    group = np.concatenate([np.zeros(len(all_x), int), 1 + ~photos.is_flower[chosen]])
    is_flower = np.concatenate([np.ones(len(all_x), bool), photos.is_flower[chosen]])
    weights, bias, held_out = fit_flower_model(
        np.concatenate([mean_rows(all_x), real_x]), is_flower, group
    )
    val_species = fit_species_space(mean_rows(fit_x), fit_y, n_classes).scores(
        mean_rows(val_x), val_confidences
    )
    space = fit_species_space(mean_rows(all_x), all_y, n_classes)
    thresholds = {
        "not_a_flower_below": flower_log_odds_cut(held_out[group == 1]),
        "unknown_species_below": unknown_species_cut(val_species, val_confidences >= unsure_below),
    }
    return HonestyModel.of(weights.astype(np.float32), bias, space), thresholds
