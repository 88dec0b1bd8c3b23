"""Many users sending photos at once through the fake Bot API: batched vs one photo at a time.

    python bench/bot_load.py [--users 50] [--photos-per-user 4]

Runs the real bot (python-telegram-bot, the shipped model, SQLite) against the test suite's fake
Bot API server on 127.0.0.1 (the `fake_telegram` package under tests/, which `pip install -e .`
installs), twice in one run: batching as deployed, and batch size 1 (each photo through the model
alone). Each user sends a photo, waits for the answer and sends the next, so `--users` photos are
in flight at all times. Prints sustained photos/s, p50/p95 time from update to reply, and the
process's peak memory (bot and fake server share the process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from fake_telegram import FakeTelegram
from sqlalchemy import select

from bot.app import build_application
from bot.config import Settings
from model_training.defaults import SHIPPED_MODEL_DIR
from storage import Database, Prediction

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:" + "B" * 35
SAMPLES = ROOT.parent / "shared" / "samples" / "photos"


@asynccontextmanager
async def bot_on_fake_telegram(
    model_dir: Path = SHIPPED_MODEL_DIR, **settings: object
) -> AsyncIterator[tuple[FakeTelegram, Settings]]:
    """The real bot polling a fake Bot API server, on a fresh SQLite file, warmed up (the first
    answer traces the model's graph); stopped as run_polling would stop it."""
    with FakeTelegram(token=TOKEN) as tg, tempfile.TemporaryDirectory() as tmp:
        bot_settings = Settings(
            telegram_bot_token=TOKEN,
            database_url=f"sqlite:///{tmp}/bench.sqlite",
            model_dir=model_dir,
            telegram_api_base_url=tg.base_url,
            telegram_file_base_url=tg.base_file_url,
            health_port=0,
            **settings,
        )
        app = build_application(bot_settings)
        await app.initialize()
        await app.post_init(app)
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            tg.user_photo(1, next(SAMPLES.glob("*.jpg")).read_bytes())
            await tg.wait_for("sendMessage", chat_id=1, timeout=120)
            yield tg, bot_settings
        finally:
            await app.updater.stop()
            await app.stop()
            await app.post_shutdown(app)
            await app.shutdown()


async def one_run(batch_size: int, users: int, per_user: int, photos: list[bytes]) -> dict:
    running = bot_on_fake_telegram(photos_per_minute=per_user + 1, batch_size=batch_size)
    async with running as (tg, settings):
        latencies: list[float] = []
        start = time.monotonic()  # the fake server's clock
        await asyncio.gather(
            *(user_loop(tg, user, photos, per_user, latencies) for user in range(100, 100 + users))
        )
        elapsed = time.monotonic() - start
        # The identifier's share: photo bytes -> answer (decode, queue, model), per photo.
        database = Database(settings.database_url)
        with database.session() as session:
            model_ms = list(session.scalars(select(Prediction.latency_ms)))
        database.dispose()
    return {
        "photos/s": len(latencies) / elapsed,
        "identify p50": float(np.percentile(model_ms, 50)) / 1000,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
    }


async def user_loop(
    tg: FakeTelegram, user: int, photos: list[bytes], count: int, latencies: list[float]
) -> None:
    """One user: send a photo, wait for the answer, send the next."""
    for i in range(count):
        mark = tg.mark()
        sent = time.monotonic()
        tg.user_photo(user, photos[(user + i) % len(photos)])
        reply = await tg.wait_for("sendMessage", chat_id=user, after=mark, timeout=600)
        latencies.append(reply.time - sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--photos-per-user", type=int, default=4)
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted(SAMPLES.glob("*.jpg"))]
    rows = []
    for label, batch in (("batched (as deployed)", 16), ("one photo at a time", 1)):
        result = asyncio.run(one_run(batch, args.users, args.photos_per_user, photos))
        rows.append((label, result))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = args.users * args.photos_per_user
    print(
        f"{args.users} users x {args.photos_per_user} photos = {n} photos; "
        f"peak memory of the process: {peak_mb:.0f} MB\n"
    )
    print(
        "| mode | photos/s | p50 update->reply | p95 update->reply | p50 bytes->answer |\n"
        "|---|---:|---:|---:|---:|"
    )
    for label, r in rows:
        print(
            f"| {label} | {r['photos/s']:.1f} | {r['p50'] * 1000:.0f} ms | "
            f"{r['p95'] * 1000:.0f} ms | {r['identify p50'] * 1000:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
