"""Photos -> answers off the event loop, with concurrent photos batched through the model.

Each chat's photo waits at most one model call: the worker takes everything queued (up to
batch_size), runs one batched call in a thread, and resolves every waiting request. The
classifier can be swapped at any time (a retrained head); requests in flight finish on the
model they started with.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from model_training.classifier import FlowerClassifier, SpeciesScore
from model_training.photos import load_photo


@dataclass(frozen=True)
class Answer:
    image: np.ndarray  # the 224x224 photo the model saw
    top5: list[SpeciesScore]
    is_flower: bool  # near some known species in feature space (model_training.abstention)
    unsure: bool  # top-1 confidence below the model's "not sure" threshold
    features: np.ndarray  # (n_views, 1280) backbone features, stored for retraining
    model_version: str
    latency_ms: float


@dataclass
class _Request:
    image: np.ndarray
    started: float
    done: asyncio.Future[Answer]


class BatchingIdentifier:
    def __init__(self, classifier: FlowerClassifier, batch_size: int = 16) -> None:
        self.classifier = classifier
        self.batch_size = batch_size
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="batching-identifier")

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    def swap(self, classifier: FlowerClassifier) -> None:
        """Serve a new model from the next batch on."""
        self.classifier = classifier

    async def identify(self, photo: bytes) -> Answer:
        """Decode (in a thread: large photos take tens of ms) and queue for the next batch."""
        started = time.perf_counter()
        image = await asyncio.to_thread(load_photo, photo)  # PhotoError propagates to the caller
        request = _Request(image, started, asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        return await request.done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            classifier = self.classifier
            try:
                images = np.stack([r.image for r in batch])
                probs, features = await asyncio.to_thread(classifier.classify, images)
                scores = classifier.flower_scores(features)
            except Exception as err:  # hand the failure to every waiting handler
                for request in batch:
                    if not request.done.done():
                        request.done.set_exception(err)
                continue
            now = time.perf_counter()
            for i, request in enumerate(batch):
                if request.done.done():  # the handler gave up (cancelled)
                    continue
                request.done.set_result(
                    Answer(
                        image=request.image,
                        top5=classifier.top_k_of(probs[i]),
                        is_flower=bool(scores[i] >= classifier.not_a_flower_below),
                        unsure=bool(probs[i].max() < classifier.unsure_below),
                        features=features[i],
                        model_version=classifier.version,
                        latency_ms=(now - request.started) * 1000,
                    )
                )
