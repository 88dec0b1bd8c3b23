"""Train -> artifact -> evaluate on a data set laid out as <root>/{train,val,test}/."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, fields
from pathlib import Path

import keras
import numpy as np

from model_training.abstention import (
    MIN_PHOTO_SIDE,
    class_centroids,
    flower_scores,
    not_a_flower_cut,
    unsure_cut,
)
from model_training.artifact import BaseRows, Metadata, ModelArtifact
from model_training.cuts import (
    LEAVE_OUT_FOLDS,
    Evidence,
    LeaveOutFold,
    Scored,
    choose_cuts,
    leave_out_folds,
)
from model_training.data import PhotoSet, read_split
from model_training.evaluate import classification_metrics
from model_training.features import FeatureCache, split_features
from model_training.head import DenseHead
from model_training.heldout import heldout_ids
from model_training.honesty import (
    HonestyModel,
    SpeciesSpace,
    fit_flower_model,
    fit_species_space,
)
from model_training.honesty import not_a_flower_cut as flower_log_odds_cut
from model_training.model import FEATURE_DIM, head_probabilities
from model_training.one_view import real_world_one_view_cuts
from model_training.realworld import (
    FLOWER_PHOTOS,
    GARDEN_PHOTOS,
    NONFLOWER,
    UNKNOWN_CLASS,
    UNKNOWN_PHOTOS,
    read_garden,
    read_realworld,
    read_unknown,
)
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


@dataclass(frozen=True)
class Rows:
    """(photos, serving views, dim) features, labels and per-photo training weights."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, weight: float = 1.0) -> Rows:
        return cls(x, y, np.full(len(y), weight, np.float32))

    def __add__(self, other: Rows) -> Rows:
        return Rows(*(np.concatenate([a, b]) for a, b in zip(self, other, strict=True)))

    def __iter__(self):  # unpacks as (x, y, w)
        return iter((self.x, self.y, self.w))

    def __getitem__(self, keep: np.ndarray) -> Rows:
        return Rows(self.x[keep], self.y[keep], self.w[keep])

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One row per photo, as fit_rows takes them."""
        return mean_rows(self.x), self.y, self.w


@dataclass(frozen=True)
class ProductRows:
    """Every photo the product model learns or is judged on, in the roles they play.

    Real-world photos of known species (garden_photos' fit half) train beside Oxford's, weighted
    by the recipe. Half of them (a seeded draw per species) are kept out of the early-stopped
    head, so that the "not sure" and "unknown species" cuts are chosen on real-world photos the
    judging head never saw as well as on Oxford val: cut on val alone, a garden photo of a known
    species was "unknown" by construction.
    """

    fit: Rows  # the early-stopped head's rows: Oxford train + test outside the held-out set
    val: Rows  # Oxford val: picks the epoch count
    calibration: Rows  # val and the real-world calibration half: the cuts
    everything: Rows  # the served head's rows
    heldout: Rows  # the base held-out set: never trained on
    realworld_calibration: Rows  # the real-world calibration half alone (within calibration)

    def without(self, species: np.ndarray) -> ProductRows:
        """The same rows without `species`, the others' labels renumbered in order."""
        n_classes = int(self.everything.y.max()) + 1
        known = np.setdiff1d(np.arange(n_classes), species)
        index = np.full(n_classes, -1)
        index[known] = np.arange(len(known))

        def keep(rows: Rows) -> Rows:
            kept = rows[np.isin(rows.y, known)]
            return Rows(kept.x, index[kept.y], kept.w)

        return ProductRows(*(keep(getattr(self, f.name)) for f in fields(self)))


# Garden rows in the fitting half that calibrate instead of training the early-stopped head.
CALIBRATION_SEED = 0


def calibration_half(labels: np.ndarray, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """True for half of each species' photos, drawn with a fixed seed."""
    chosen = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen[rng.permutation(members)[: len(members) // 2]] = True
    return chosen


def product_rows(
    data_root: str | Path,
    recipe: RowRecipe,
    cache: FeatureCache,
    class_names: list[str] | None,
    realworld: Path,
) -> tuple[ProductRows, dict[str, PhotoSet], str]:
    """The rows, the Oxford splits and a fingerprint of the real-world rows ("none" without)."""
    views = recipe.serve_views
    splits = {s: read_split(data_root, s, class_names) for s in ("train", "val", "test")}
    features = {s: split_features(p, views, cache, s) for s, p in splits.items()}
    held = np.isin(splits["test"].ids, list(heldout_ids()))
    test = Rows.of(features["test"], splits["test"].labels)
    fit = Rows.of(features["train"], splits["train"].labels) + test[~held]
    val = Rows.of(features["val"], splits["val"].labels)
    empty = Rows.of(np.empty((0, len(views), FEATURE_DIM), np.float32), np.empty(0, np.int64))
    garden, fingerprint = empty, "none"
    if (realworld / GARDEN_PHOTOS).is_dir():
        photos = read_garden(realworld).fitting_half()
        fingerprint = hashlib.sha256("\n".join(photos.keys).encode()).hexdigest()[:16]
        garden = Rows.of(
            photos.features(views, cache), photos.oxford_class, recipe.realworld_weight
        )
    calibrating = calibration_half(garden.y)
    rows = ProductRows(
        fit=fit + garden[~calibrating],
        val=val,
        calibration=val + garden[calibrating],
        everything=fit + val + garden,
        heldout=test[held],
        realworld_calibration=garden[calibrating],
    )
    return rows, splits, fingerprint


@dataclass
class FittedProduct:
    head: keras.Model
    early: keras.Model  # fitted on the fitting rows alone: scores what the cuts are chosen on
    epochs: int
    history: dict[str, list[float]]
    calibration_probabilities: np.ndarray  # the early-stopped head's, never trained on them
    unsure_below: float


def fit_product(
    rows: ProductRows, n_classes: int, recipe: RowRecipe, seed: int = 0
) -> FittedProduct:
    """Val picks the epoch count (early stopping while fitting on the rest) and the calibration
    rows the "not sure" cut; then the head is fitted again on everything for that many epochs."""
    early, history = fit_rows(
        n_classes,
        rows.fit.means(),
        recipe,
        recipe.max_epochs,
        seed,
        val=(mean_rows(rows.val.x), rows.val.y),
    )
    epochs = int(np.argmax(history["val_accuracy"])) + 1
    calibration_probabilities = head_probabilities(early, rows.calibration.x)
    unsure_below = unsure_cut(calibration_probabilities, rows.calibration.y)
    head, _ = fit_rows(n_classes, rows.everything.means(), recipe, epochs, seed)
    return FittedProduct(head, early, epochs, history, calibration_probabilities, unsure_below)


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
    set (model_training/heldout.py), one row per photo, and the real-world photos' fitting half
    (`realworld`, default: beside the data set, e.g. ../shared/data), which also calibrates
    "not a flower"; without them the folder gets the older centroid rule.
    """
    started = time.perf_counter()
    cache = FeatureCache(cache_dir, recipe.scaling)
    folder = Path(data_root).parent if realworld is None else Path(realworld)
    rows, splits, garden_fingerprint = product_rows(data_root, recipe, cache, class_names, folder)
    names = splits["train"].class_names
    n_classes = len(names)
    fitted = fit_product(rows, n_classes, recipe, seed)
    real = (cache, recipe.serve_views, folder)
    honesty, thresholds = fit_honesty(rows, n_classes, real)
    cut_choice = None
    if honesty is None:
        thresholds["unsure_below"] = fitted.unsure_below
    else:
        cut_choice = choose_cuts(honesty_evidence(rows, fitted, n_classes, recipe, seed, real))
        thresholds["unsure_below"] = cut_choice.unsure_below
        thresholds["unknown_species_below"] = cut_choice.unknown_species_below
        # The bot's answer under overload (bot/overload.py), as honest as these four-view cuts.
        calibrating = read_realworld(folder).fitting_half()
        thresholds |= real_world_one_view_cuts(
            DenseHead.of(fitted.head), honesty, thresholds, recipe.serve_views, calibrating, cache
        )
    report = classification_metrics(
        head_probabilities(fitted.head, rows.heldout.x), rows.heldout.y, names
    )
    n_held = len(rows.heldout.y)
    metadata = Metadata(
        version=version,
        classes=n_classes,
        scaling=recipe.scaling,
        serve_views=list(recipe.serve_views),
        data_fingerprint="+".join(f"{s}:{p.fingerprint[:16]}" for s, p in splits.items())
        + f"-heldout:{n_held}-realworld:{garden_fingerprint}",
        recipe={**recipe.as_dict(), "seed": seed, "epochs": fitted.epochs},
        metrics={
            "val_accuracy_early_stopping": max(fitted.history["val_accuracy"]),
            "heldout_photos": n_held,
            **{f"heldout_{k}": report[k] for k in ("top1", "top5", "macro_f1", "ece")},
            **({"cut_choice": cut_choice.as_dict()} if cut_choice else {}),
            "train_seconds": round(time.perf_counter() - started, 1),
        },
        history=fitted.history,
        thresholds={**thresholds, "min_photo_side": MIN_PHOTO_SIDE},
    )
    everything = rows.everything
    base = BaseRows(
        mean_rows(everything.x), everything.y, rows.heldout.x, rows.heldout.y, everything.w
    )
    centroids = class_centroids(everything.x, everything.y, n_classes)
    return ModelArtifact(fitted.head, names, metadata, centroids, base, honesty)


def fit_honesty(
    rows: ProductRows,
    n_classes: int,
    real: tuple[FeatureCache, tuple[str, ...], Path],
) -> tuple[HonestyModel | None, dict[str, float]]:
    """The honesty model and the "not a flower" cut; (None, the centroid cut) without
    real-world photos. The cut comes from cross-validated log-odds of the real-world fitting
    halves; the served model is fitted on everything."""
    cache, views, folder = real
    if not (folder / FLOWER_PHOTOS).is_dir() or not (folder / NONFLOWER).is_dir():
        centroids = class_centroids(rows.fit.x, rows.fit.y, n_classes)
        return None, {"not_a_flower_below": not_a_flower_cut(flower_scores(rows.val.x, centroids))}
    photos = read_realworld(folder).fitting_half()
    real_x = mean_rows(photos.features(views, cache))
    # Groups weigh the same in total: the training flowers (Oxford's and garden_photos'),
    # flower_photos' flowers, non-flowers. The cut comes from flower_photos alone: other
    # photographers' photos than any training row.
    trained_x = mean_rows(rows.everything.x)
    group = np.concatenate([np.zeros(len(trained_x), int), 1 + ~photos.is_flower])
    is_flower = np.concatenate([np.ones(len(trained_x), bool), photos.is_flower])
    rows_x = np.concatenate([trained_x, real_x])
    weights, bias, held_out = fit_flower_model(rows_x, is_flower, group)
    space = fit_species_space(*rows.everything.means()[:2], n_classes)
    cut = flower_log_odds_cut(held_out[group == 1])
    return HonestyModel.of(weights.astype(np.float32), bias, space), {"not_a_flower_below": cut}


def scored(
    head: keras.Model, space: SpeciesSpace, features: np.ndarray, labels: np.ndarray | None
) -> Scored:
    """(photos, views, dim) features as a head and species space answer them."""
    probabilities = head_probabilities(head, features)
    confidence = probabilities.max(axis=1)
    right = None if labels is None else probabilities.argmax(axis=1) == labels
    return Scored(confidence, space.scores(mean_rows(features), confidence), right)


def honesty_evidence(
    rows: ProductRows,
    fitted: FittedProduct,
    n_classes: int,
    recipe: RowRecipe,
    seed: int,
    real: tuple[FeatureCache, tuple[str, ...], Path],
    folds: int = LEAVE_OUT_FOLDS,
) -> Evidence:
    """What the cuts are chosen on (model_training/cuts.py), each scored by a head and species
    space that never trained on it: the early-stopped head and the fitting rows' space for the
    calibration rows and the real-world fitting halves; per leave-out fold, a head and space
    fitted without the fold's species (and their real-world rows) for every photo of them."""
    cache, views, folder = real
    space = fit_species_space(*rows.fit.means()[:2], n_classes)
    known = {
        GARDEN_PHOTOS: scored(
            fitted.early, space, rows.realworld_calibration.x, rows.realworld_calibration.y
        )
    }
    unknown = {}
    photos = read_realworld(folder).fitting_half()
    flowers = photos.subset(photos.is_flower)
    x = flowers.features(views, cache)
    named = flowers.oxford_class != UNKNOWN_CLASS
    known[FLOWER_PHOTOS] = scored(fitted.early, space, x[named], flowers.oxford_class[named])
    unknown["tulips"] = scored(fitted.early, space, x[~named], None)
    if (folder / UNKNOWN_PHOTOS).is_dir():
        astilbe = read_unknown(folder).fitting_half()
        unknown["astilbe"] = scored(fitted.early, space, astilbe.features(views, cache), None)
    return Evidence(
        calibration=scored(fitted.early, space, rows.calibration.x, rows.calibration.y),
        known=known,
        unknown=unknown,
        folds=[
            leave_out_fold(rows, species, recipe, fitted.epochs, seed)
            for species in leave_out_folds(
                n_classes, np.unique(rows.realworld_calibration.y), folds
            )
        ],
    )


def leave_out_fold(
    rows: ProductRows, species: np.ndarray, recipe: RowRecipe, epochs: int, seed: int
) -> LeaveOutFold:
    """A head (the product's epochs) and species space fitted without `species`: its own
    calibration photos, and every photo of the left-out species that the product trains on."""
    known = rows.without(species)
    n_known = int(known.everything.y.max()) + 1
    head, _ = fit_rows(n_known, known.fit.means(), recipe, epochs, seed)
    space = fit_species_space(*known.fit.means()[:2], n_known)
    gone = rows.everything[np.isin(rows.everything.y, species)]
    return LeaveOutFold(
        known=scored(head, space, known.calibration.x, known.calibration.y),
        unknown=scored(head, space, gone.x, None),
    )
