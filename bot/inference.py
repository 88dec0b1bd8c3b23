"""Photos -> answers off the event loop, with concurrent photos batched through the model.

Each chat's photo waits at most one model call: the worker takes everything queued (up to
batch_size), runs one batched call in a thread, and resolves every waiting request. The
classifier can be swapped at any time (a retrained head); requests in flight finish on the
model they started with.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from model_training.classifier import Answer, FlowerClassifier
from model_training.photos import Photo, decode_photo


@dataclass
class _Request:
    photo: Photo
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

    async def identify(self, data: bytes) -> Answer:
        """Decode (in a thread: large photos take tens of ms) and answer."""
        return await self.answer(await asyncio.to_thread(decode_photo, data))  # PhotoError raises

    async def answer(self, photo: Photo) -> Answer:
        """Queue a decoded photo for the next batch."""
        request = _Request(photo, asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        return await request.done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            classifier = self.classifier
            try:
                answers = await asyncio.to_thread(classifier.answers, [r.photo for r in batch])
            except Exception as err:  # hand the failure to every waiting handler
                for request in batch:
                    if not request.done.done():
                        request.done.set_exception(err)
                continue
            for request, answer in zip(batch, answers, strict=True):
                if not request.done.done():  # else the handler gave up (cancelled)
                    request.done.set_result(answer)
