"""Photos -> top-5 species: the one inference path of the CLI, the bot and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from model_training.abstention import flower_scores
from model_training.artifact import ModelArtifact, load_artifact
from model_training.photos import INPUT_SIZE, load_photo


@dataclass(frozen=True)
class SpeciesScore:
    species: str
    index: int
    confidence: float


class FlowerClassifier:
    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.class_names = artifact.class_names
        self.version = artifact.metadata.version
        self.not_a_flower_below = artifact.metadata.thresholds["not_a_flower_below"]
        self.unsure_below = artifact.metadata.thresholds["unsure_below"]
        self.model = artifact.composed()
        # The same graph, also returning the per-view backbone features the bot stores so that
        # retraining never runs the backbone again.
        with_features = keras.Model(
            self.model.input, [self.model.output, self.model.get_layer("per_view").output]
        )
        # One traced graph for any batch size: model.predict() per photo rebuilds its data
        # pipeline on every call, which costs more than the network itself for one photo.
        self._classify = tf.function(
            lambda images: with_features(images, training=False),
            input_signature=[tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.uint8)],
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> FlowerClassifier:
        return cls(load_artifact(folder))

    def classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batch, 224, 224, 3) uint8 -> probabilities (batch, n_classes) and backbone features
        (batch, n_views, 1280) for the serving views."""
        probabilities, features = self._classify(tf.convert_to_tensor(images, tf.uint8))
        return probabilities.numpy(), features.numpy()

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(batch, 224, 224, 3) uint8 -> (batch, n_classes) probabilities."""
        if len(images) == 0:
            return np.empty((0, len(self.class_names)), dtype=np.float32)
        return self.classify(images)[0]

    def flower_scores(self, features: np.ndarray) -> np.ndarray:
        """Similarity to the nearest known species; below `not_a_flower_below`: not a flower."""
        return flower_scores(features, self.artifact.centroids)

    def top_k_species(self, images: np.ndarray, k: int = 5) -> list[list[SpeciesScore]]:
        return [self.top_k_of(row, k) for row in self.probabilities(images)]

    def top_k_of(self, probabilities: np.ndarray, k: int = 5) -> list[SpeciesScore]:
        best = np.argsort(-probabilities, kind="stable")[:k]
        return [SpeciesScore(self.class_names[i], int(i), float(probabilities[i])) for i in best]

    def identify(self, photo: bytes, k: int = 5) -> list[SpeciesScore]:
        """Encoded photo bytes -> its top-k species (PhotoError for unreadable input)."""
        return self.top_k_species(load_photo(photo)[None], k)[0]
