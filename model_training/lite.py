"""A model folder as serving runs it: the backbone in LiteRT (XNNPACK on the CPU), the views, the
head and the honesty scores in numpy. Nothing here imports TensorFlow or Keras
(tests/test_lite.py): the plain install serves; `flowerbot[train]` adds them for training.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from model_training.artifact import (
    BACKBONE_FILE,
    HEAD_FILE,
    Metadata,
    ModelArtifact,
    ModelFolderError,
    read_folder,
)
from model_training.head import DenseHead
from model_training.honesty import HonestyModel
from model_training.views import view_images

# The one line that says what a plain install lacks to train, retrain or convert.
NEEDS_TRAIN = "needs TensorFlow: pip install 'flowerbot[train]'"
# XNNPACK's threads per call: one per core, up to 4. On the 2-core machine one view's fastest
# pass took 9.6 ms with 1 thread and 6.1 ms with 2; more threads than cores only contend.
THREADS = min(os.cpu_count() or 1, 4)


def has_tensorflow() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


class LiteBackbone:
    """float32 views (n, 224, 224, 3) in 0..255 -> features (n, width: 1280 for the served
    backbone), through one interpreter.

    An interpreter is not thread-safe: calls take turns (the bot runs one batch at a time
    anyway, in a worker thread).
    """

    def __init__(self, model: bytes, threads: int = THREADS) -> None:
        self._interpreter = Interpreter(model_content=model, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        output = self._interpreter.get_output_details()[0]
        self._output = output["index"]
        self.width = int(output["shape"][-1])
        self._batch = 0
        self._lock = threading.Lock()

    def features(self, views: np.ndarray) -> np.ndarray:
        with self._lock:
            if len(views) != self._batch:  # resizing re-plans the graph: only when it changes
                self._interpreter.resize_tensor_input(self._input, views.shape)
                self._interpreter.allocate_tensors()
                self._batch = len(views)
            self._interpreter.set_tensor(self._input, views)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()


@dataclass(frozen=True)
class ServingModel:
    """Everything an answer needs of a model folder, without Keras."""

    head: DenseHead
    backbone: LiteBackbone
    class_names: list[str]
    metadata: Metadata
    centroids: np.ndarray
    honesty: HonestyModel | None
    folder: Path | None  # None: built from an artifact in memory

    @classmethod
    def load(cls, folder: str | Path) -> ServingModel:
        folder = Path(folder)
        contents = read_folder(folder)
        if (folder / BACKBONE_FILE).is_file():
            backbone = (folder / BACKBONE_FILE).read_bytes()
        elif has_tensorflow():  # a folder from before backbone.tflite: converted in memory
            from model_training.convert import backbone_tflite

            backbone = backbone_tflite(contents.metadata.scaling)
        else:
            raise ModelFolderError(
                f"{folder} has no {BACKBONE_FILE}; converting its backbone {NEEDS_TRAIN}"
            )
        return cls(
            DenseHead.read(folder / HEAD_FILE),
            LiteBackbone(backbone),
            contents.class_names,
            contents.metadata,
            contents.centroids,
            contents.honesty,
            folder,
        )

    @classmethod
    def of(cls, artifact: ModelArtifact) -> ServingModel:
        """An artifact in memory (training side: its backbone is converted, or its source's)."""
        from model_training.convert import backbone_tflite, same_backbone

        source = artifact.source
        if source is not None and same_backbone(source, artifact.metadata):
            backbone = (source / BACKBONE_FILE).read_bytes()
        else:
            backbone = backbone_tflite(artifact.metadata.scaling)
        return cls(
            DenseHead.of(artifact.head),
            LiteBackbone(backbone),
            artifact.class_names,
            artifact.metadata,
            artifact.centroids,
            artifact.honesty,
            None,
        )

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(self.metadata.serve_views)

    def classify(
        self, images: np.ndarray, views: tuple[str, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(batch, 224, 224, 3) uint8 -> probabilities (batch, n_classes), the head's mean over
        the serving views (or `views`: the one-view answer), and backbone features (batch,
        n_views, 1280)."""
        views = views or self.views
        # One photo's views per call: the interpreter's buffers are sized for its largest batch
        # and kept, so 16 photos in one call left the process at 500 MB resident for good (one
        # photo per call: 126 MB), for about the same throughput (bench/latency.py).
        features = np.stack(
            [self.backbone.features(view_images(image[None], views)) for image in images]
        )
        return self.head.probabilities(features).mean(axis=1), features
