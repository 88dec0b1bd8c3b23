"""Photos -> answers off the event loop, with concurrent photos batched through the model.

Each chat's photo waits at most one model call: the worker takes everything queued (up to
batch_size), runs one batched call in a thread (two when some asked for the one-view answer),
and resolves every waiting request. The
classifier can be swapped at any time (a retrained head); requests in flight finish on the
model they started with.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from model_training.classifier import Answer, FlowerClassifier
from model_training.photos import Photo, decode_photo


@dataclass
class _Request:
    photo: Photo
    one_view: bool  # the one-view answer (bot/overload.py)
    done: asyncio.Future[Answer]


class BatchingIdentifier:
    def __init__(self, classifier: FlowerClassifier, batch_size: int = 16) -> None:
        self.classifier = classifier
        self.batch_size = batch_size
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        # The model's own thread: in asyncio's shared pool a batch queued behind every photo's
        # decode and database work, so the more photos were waiting, the longer the model sat
        # idle between batches (under overload the bot answered fewer photos a second).
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="batching-identifier")

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._model_thread.shutdown(wait=False)

    def swap(self, classifier: FlowerClassifier) -> None:
        """Serve a new model from the next batch on."""
        self.classifier = classifier

    async def identify(self, data: bytes, one_view: bool = False) -> Answer:
        """Decode (in a thread: large photos take tens of ms) and answer."""
        photo = await asyncio.to_thread(decode_photo, data)  # PhotoError raises
        return await self.answer(photo, one_view)

    async def answer(self, photo: Photo, one_view: bool = False) -> Answer:
        """Queue a decoded photo for the next batch; `one_view`: the one-view answer, when the
        model serving that batch has one (else the four-view answer)."""
        request = _Request(photo, one_view, asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        return await request.done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            classifier = self.classifier
            # A model without one-view cuts (swapped in meanwhile) answers with four views.
            groups: dict[bool, list[_Request]] = {False: [], True: []}
            for request in batch:
                groups[request.one_view and classifier.has_one_view].append(request)
            for one_view, requests in groups.items():
                if requests:
                    await self._answer(classifier, requests, one_view)

    async def _answer(
        self, classifier: FlowerClassifier, requests: list[_Request], one_view: bool
    ) -> None:
        photos = [r.photo for r in requests]
        loop = asyncio.get_running_loop()
        try:
            answers = await loop.run_in_executor(
                self._model_thread, classifier.answers, photos, one_view
            )
        except Exception as err:  # hand the failure to every waiting handler
            for request in requests:
                if not request.done.done():
                    request.done.set_exception(err)
            return
        for request, answer in zip(requests, answers, strict=True):
            if not request.done.done():  # else the handler gave up (cancelled)
                request.done.set_result(answer)
