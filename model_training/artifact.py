"""The model artifact: one versioned folder loaded by the CLI, bot, retraining and web exporter.

<dir>/head.weights.h5   the trained head (the backbone is the public ImageNet MobileNetV2)
<dir>/backbone.tflite   the frozen backbone, pixel scaling and pooling converted to LiteRT:
                        float32 views (n, 224, 224, 3) in 0..255 -> (n, 1280) features, what
                        serving runs (model_training/lite.py); a retrained head links its
                        parent's, the backbone being the same (optional: older folders convert
                        it when they load, which needs TensorFlow)
<dir>/classes.txt       class names, line N = class N
<dir>/centroids.npy     each species' mean backbone feature: tells flowers from the rest
<dir>/metadata.json     backbone and its weight fingerprint, input size, scaling, serving views,
                        training data fingerprint, recipe, metrics, creation time
<dir>/honesty.npz      the flower/non-flower model and the species' whitened means behind the
                        "not a flower" and "unknown species" verdicts (model_training/honesty.py;
                        optional: older folders fall back to the centroids)
<dir>/base.npz          what retraining needs of the base data set (float16 features of the
                        training photos and of the base held-out set): the bot retrains with
                        nothing but the model folder and its database
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model_training.atomic import atomic_folder
from model_training.honesty import HONESTY_FILE, HonestyModel, load_honesty
from model_training.photos import INPUT_SIZE

if TYPE_CHECKING:  # serving reads folders without Keras (model_training/lite.py)
    import keras

BACKBONE_NAME = "MobileNetV2(alpha=1.0, input=224, weights=imagenet, pooling=avg)"
FORMAT_VERSION = 1
HEAD_FILE = "head.weights.h5"
BACKBONE_FILE = "backbone.tflite"
CLASSES_FILE = "classes.txt"
METADATA_FILE = "metadata.json"
CENTROIDS_FILE = "centroids.npy"
BASE_FILE = "base.npz"


@dataclass
class Metadata:
    version: str
    classes: int
    scaling: str
    serve_views: list[str]
    data_fingerprint: str
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    # "not_a_flower_below" (flower log-odds; cosine to the nearest centroid without honesty.npz),
    # "unknown_species_below" (relative Mahalanobis, honesty.py), "unsure_below" (top-1)
    thresholds: dict = field(default_factory=dict)
    backbone: str = BACKBONE_NAME
    backbone_fingerprint: str = ""
    input_size: int = INPUT_SIZE
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class BaseRows:
    """The base data set as retraining uses it. float16 halves the folder (30 -> 15 MB for Oxford
    102); the head's top-1 on float16 features equals float32's to the photo."""

    train_x: np.ndarray  # (photos, dim): each training photo's features, mean over serving views
    train_y: np.ndarray
    heldout_x: np.ndarray  # (photos, serving views, dim): the base held-out set, as served
    heldout_y: np.ndarray
    # Each training row's weight (real-world rows may count more than Oxford's); None: all 1.
    train_w: np.ndarray | None = None

    @property
    def weights(self) -> np.ndarray:
        return np.ones(len(self.train_y), np.float32) if self.train_w is None else self.train_w

    def save(self, path: Path) -> None:
        arrays = {name: getattr(self, name) for name in ("train_x", "heldout_x")}
        labels = {name: getattr(self, name) for name in ("train_y", "heldout_y")}
        weights = {} if self.train_w is None else {"train_w": self.train_w.astype(np.float32)}
        np.savez(
            path,
            **{k: v.astype(np.float16) for k, v in arrays.items()},
            **{k: v.astype(np.int16) for k, v in labels.items()},
            **weights,
        )


def load_base_rows(folder: str | Path) -> BaseRows:
    path = Path(folder) / BASE_FILE
    if not path.is_file():
        raise ModelFolderError(f"no base features in the model folder {folder} ({BASE_FILE})")
    with np.load(path) as stored:
        return BaseRows(**{name: stored[name] for name in stored.files})


@dataclass
class ModelArtifact:
    """A model as training holds it (a Keras head); serving reads the folder without Keras
    (model_training/lite.py)."""

    head: keras.Model
    class_names: list[str]
    metadata: Metadata
    centroids: np.ndarray  # (n_classes, 1280) unit-length species centroids in feature space
    base: BaseRows | None = None  # written with the folder; load_base_rows reads it on demand
    honesty: HonestyModel | None = None  # None: a folder from before honesty.npz
    # The folder it was read from. A retrained candidate (dataclasses.replace of its parent)
    # keeps it and links that folder's backbone.tflite instead of converting the backbone again.
    source: Path | None = None

    def composed(self) -> keras.Model:
        """Backbone and head as one Keras model: uint8-range RGB 224x224 -> probabilities."""
        from model_training.model import compose

        return compose(self.head, tuple(self.metadata.serve_views), self.metadata.scaling)

    def save(self, folder: str | Path) -> Path:
        """Write the artifact; the folder appears complete or not at all."""
        from model_training.convert import write_backbone
        from model_training.model import backbone_fingerprint

        folder = Path(folder)
        if not self.metadata.backbone_fingerprint:
            self.metadata.backbone_fingerprint = backbone_fingerprint()
        with atomic_folder(folder) as staging:
            self.head.save_weights(staging / HEAD_FILE)
            write_backbone(staging / BACKBONE_FILE, self.metadata, self.source)
            np.save(staging / CENTROIDS_FILE, self.centroids.astype(np.float32))
            classes = "\n".join(self.class_names) + "\n"
            (staging / CLASSES_FILE).write_text(classes, encoding="utf-8")
            (staging / METADATA_FILE).write_text(json.dumps(asdict(self.metadata), indent=2) + "\n")
            if self.base is not None:
                self.base.save(staging / BASE_FILE)
            if self.honesty is not None:
                self.honesty.save(staging / HONESTY_FILE)
        return folder


class ModelFolderError(ValueError):
    """A model folder that is missing, incomplete or of another format; the message says which."""


class BackboneUnavailable(RuntimeError):
    """The ImageNet weights are neither in Keras' cache nor downloadable."""


@dataclass(frozen=True)
class FolderContents:
    """What training and serving alike read of a model folder (all but the head)."""

    metadata: Metadata
    class_names: list[str]
    centroids: np.ndarray
    honesty: HonestyModel | None


def read_folder(folder: Path) -> FolderContents:
    if not (folder / METADATA_FILE).is_file():
        raise ModelFolderError(f"{folder} is not a flowerbot model folder (no {METADATA_FILE})")
    try:
        metadata = Metadata(**json.loads((folder / METADATA_FILE).read_text()))
    except (ValueError, TypeError) as err:
        raise ModelFolderError(f"{folder / METADATA_FILE} is not valid model metadata") from err
    if metadata.format_version != FORMAT_VERSION:
        raise ModelFolderError(f"{folder}: model format {metadata.format_version} is unsupported")
    if missing := [
        f for f in (CLASSES_FILE, HEAD_FILE, CENTROIDS_FILE) if not (folder / f).is_file()
    ]:
        raise ModelFolderError(f"{folder} is incomplete: {', '.join(missing)} missing")
    class_names = (folder / CLASSES_FILE).read_text(encoding="utf-8").splitlines()
    centroids = np.load(folder / CENTROIDS_FILE)
    return FolderContents(metadata, class_names, centroids, load_honesty(folder))


def load_artifact(folder: str | Path) -> ModelArtifact:
    """The folder with its head in Keras (training side: retraining, evaluation, exports)."""
    from model_training.model import build_head

    folder = Path(folder)
    contents = read_folder(folder)
    head = build_head(len(contents.class_names))
    head.load_weights(folder / HEAD_FILE)
    return ModelArtifact(
        head,
        contents.class_names,
        contents.metadata,
        contents.centroids,
        honesty=contents.honesty,
        source=folder,
    )
