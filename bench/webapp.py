"""The camera page inside Telegram sending photos to the bot: the time from "Send to the bot" to
the photo stored and answered in the chat, and whether the bot's top-1 is the page's.

    python bench/webapp.py [--sends 50] [--realworld 20] [--data ../shared/data] [--seed 0]

Runs the real bot (the shipped model, SQLite) polling the test suite's fake Bot API, the page
served as `flowerbot web` serves it with POST /webapp/ forwarded to the bot's health server (as
the reverse proxy does in production), and headless Chromium opening the page as Telegram opens
a Mini App: the launch parameters in the URL's fragment with init data the fake Bot API signs,
Telegram's own script in the page, the app's side of the bridge played here. For each send a
photo is chosen, its answer shown, and the main button pressed; the time runs from the press to
the answer message reaching the fake Bot API (the photo and its prediction are committed before
the answer goes out), both on this process's time.monotonic(). One send at a time: the sample
photos cycled to --sends, then --realworld photos of flower_photos drawn with --seed.

Prints a Markdown table per photo set: sends, p50, p95 and max seconds, and how many sends had
the same top-1 from the bot (stored prediction) and the page (its answer, kept beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Run as `python bench/webapp.py`, bench/ comes first on sys.path and "web" would be bench/web.py,
# not the web/ package: look past it.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
import numpy as np
from fake_telegram import FakeTelegram, polling
from playwright.async_api import async_playwright
from sqlalchemy import select

from bot.app import build_application
from bot.config import Settings
from model_training.defaults import SHIPPED_MODEL_DIR
from storage import Database, Prediction, WebAppSend
from web.browser import launch_options
from web.export import export_web
from web.server import serving

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:" + "W" * 35
SHARED = Path(os.environ.get("FLOWERBOT_SHARED", ROOT.parent / "shared"))  # as tests/conftest.py
SAMPLES = SHARED / "samples" / "photos"
USER = 4242
GOAL_P95_S = 2.0
# Telegram's app side of the bridge (its Android app injects this object); the page's events are
# not needed here, only that the bridge exists.
TELEGRAM_APP = "window.TelegramWebviewProxy = { postEvent() {} };"
PREDICTIONS = "(+document.getElementById('species').dataset.predictions || 0)"
SENT = "(+document.getElementById('sent').dataset.sent || 0)"


def launch_url(page_url: str, init_data: str) -> str:
    fields = {"tgWebAppData": init_data, "tgWebAppVersion": "8.0", "tgWebAppPlatform": "android"}
    return page_url + "#" + "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())


def realworld_photos(data: Path, count: int, seed: int) -> list[Path]:
    with (data / "flower_photos" / "labels.csv").open(newline="") as f:
        files = [data / "flower_photos" / row["file"] for row in csv.DictReader(f)]
    return random.Random(seed).sample(files, min(count, len(files)))


async def send_all(page, tg: FakeTelegram, photos: list[Path]) -> list[float]:
    """Each photo chosen, answered on the page and sent; seconds from the press to the answer."""
    seconds = []
    for path in photos:
        shown, sent = await page.evaluate(PREDICTIONS), await page.evaluate(SENT)
        await page.set_input_files("#file", str(path))
        await page.wait_for_function(f"{PREDICTIONS} > {shown}", timeout=120_000)
        mark = tg.mark()
        pressed = time.monotonic()
        await page.evaluate("Telegram.WebView.receiveEvent('main_button_pressed')")
        answer = await tg.wait_for("sendMessage", chat_id=USER, after=mark, timeout=120)
        seconds.append(answer.time - pressed)
        await page.wait_for_function(f"{SENT} > {sent}", timeout=120_000)
    return seconds


async def send_from_the_page(
    tg: FakeTelegram, url: str, warm_up: list[Path], sets: dict[str, list[Path]]
) -> dict[str, list[float]]:
    """The page opened as Telegram opens it; each set of photos sent: its seconds per send."""
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(**launch_options())
        context = await browser.new_context(viewport={"width": 420, "height": 900})
        await context.add_init_script(TELEGRAM_APP)
        page = await context.new_page()
        await page.goto(launch_url(url, tg.webapp_init_data(USER)))
        await page.locator("#camera-note").wait_for(timeout=120_000)
        # One send first: the bot's model and the page's are warm for the timed ones.
        await send_all(page, tg, warm_up)
        timed = {name: await send_all(page, tg, photos) for name, photos in sets.items()}
        await browser.close()
        return timed
    finally:
        await playwright.stop()


def top1_pairs(database_url: str) -> list[tuple[int, int]]:
    """(page's top-1, bot's top-1) of every send, in the order sent."""
    database = Database(database_url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(WebAppSend.page_top5, Prediction.top5)
                .join(Prediction, Prediction.id == WebAppSend.prediction_id)
                .order_by(WebAppSend.id)
            )
            return [(page[0]["index"], bot[0]["index"]) for page, bot in rows]
    finally:
        database.dispose()


async def run(args: argparse.Namespace) -> None:
    samples = sorted(SAMPLES.glob("*.jpg"))
    sets = {
        "sample photos": [samples[i % len(samples)] for i in range(args.sends)],
        "flower_photos (real world)": realworld_photos(args.data, args.realworld, args.seed),
    }
    with FakeTelegram(token=TOKEN) as tg, tempfile.TemporaryDirectory() as tmp:
        health_port = free_port()
        settings = Settings(
            telegram_bot_token=TOKEN,
            database_url=f"sqlite:///{tmp}/bench.sqlite",
            model_dir=SHIPPED_MODEL_DIR,
            telegram_api_base_url=tg.base_url,
            telegram_file_base_url=tg.base_file_url,
            health_port=health_port,
            photos_per_minute=10_000,  # the benchmark's sends, not the per-user limit
        )
        exported = export_web(SHIPPED_MODEL_DIR, Path(tmp) / "model")
        backend = f"http://127.0.0.1:{health_port}"
        # The page server outlives the bot: stopping it blocks the event loop for a moment.
        with serving(exported, webapp_backend=backend) as url:
            async with polling(build_application(settings)):
                tg.user_command(USER, "start")
                await tg.wait_for("sendMessage", chat_id=USER, timeout=120)
                timed = await send_from_the_page(tg, url, samples[:1], sets)
        pairs = top1_pairs(settings.database_url)[1:]
    print(f'\n"Send to the bot" -> stored and answered in the chat (goal: p95 <= {GOAL_P95_S} s)\n')
    print("| photos | sends | p50 | p95 | max | top-1 bot = page |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, seconds in timed.items():
        mine, pairs = pairs[: len(seconds)], pairs[len(seconds) :]
        agree = sum(page == bot for page, bot in mine)
        p50, p95 = np.percentile(seconds, 50), np.percentile(seconds, 95)
        print(
            f"| {name} | {len(seconds)} | {p50:.2f} s | {p95:.2f} s | {max(seconds):.2f} s "
            f"| {agree}/{len(mine)} |"
        )
    print(f"\nload average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=50)
    parser.add_argument("--realworld", type=int, default=20)
    parser.add_argument("--data", type=Path, default=SHARED / "data")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
