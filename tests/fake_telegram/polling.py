"""A python-telegram-bot Application polling the fake server inside an event loop that is
already running (a test's, a benchmark's): the steps `Application.run_polling` takes, without
its blocking loop and signal handlers, and the same steps undone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telegram.ext import Application


async def start_polling(app: Application) -> None:
    await app.initialize()
    if app.post_init is not None:  # run_polling calls it; start() does not
        await app.post_init(app)
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)


async def stop_polling(app: Application) -> None:
    assert app.updater is not None
    await app.updater.stop()
    await app.stop()
    if app.post_stop is not None:
        await app.post_stop(app)
    if app.post_shutdown is not None:
        await app.post_shutdown(app)
    await app.shutdown()


@asynccontextmanager
async def polling(app: Application) -> AsyncIterator[Application]:
    """`app` polling until the block ends."""
    await start_polling(app)
    try:
        yield app
    finally:
        await stop_polling(app)
