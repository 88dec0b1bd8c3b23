"""The trained head in numpy: what serving runs after the backbone (no Keras).

Dropout is the identity at inference, so the head is its dense softmax layer alone, read from
the model folder's head.weights.h5 with h5py (Keras writes it; folders of every version hold it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class DenseHead:
    kernel: np.ndarray  # (dim, n_classes) float32
    bias: np.ndarray  # (n_classes,)

    @classmethod
    def read(cls, path: Path) -> DenseHead:
        """From Keras' weights file: the one layer with variables holds the kernel and bias."""
        with h5py.File(path, "r") as weights:
            layers = [g["vars"] for g in weights["layers"].values() if len(g["vars"])]
            if len(layers) != 1:
                raise ValueError(f"{path}: expected one dense layer, found {len(layers)}")
            return cls(
                np.asarray(layers[0]["0"], np.float32), np.asarray(layers[0]["1"], np.float32)
            )

    @classmethod
    def of(cls, head: keras.Model) -> DenseHead:
        """A Keras head (model_training.model.build_head) as it stands."""
        kernel, bias = head.get_layer("species").get_weights()
        return cls(np.asarray(kernel, np.float32), np.asarray(bias, np.float32))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(..., dim) features -> (..., n_classes) softmax probabilities."""
        logits = features @ self.kernel + self.bias
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)
