"""The camera page opened as Telegram opens a Mini App, in headless Chromium, sending to the real
bot (POST /webapp/photo through the page server, as through the reverse proxy) in the fake Bot
API's world.

Telegram's own script runs in the page (web/telegram.js loads it from @twa-dev/sdk); the test
plays Telegram's app around it: the launch parameters in the URL's fragment, with init data the
fake Bot API signs with the bot's token, and the app's side of the bridge
(window.TelegramWebviewProxy, as Telegram's Android app injects it; events back through
Telegram.WebView.receiveEvent, as the apps call it).
"""

# ruff: noqa: F401, F811
from __future__ import annotations

import io
import json
import random
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import run_bench, table_cells
from PIL import Image
from sqlalchemy import select
from test_bot import ALICE, count, feedback_rows, in_db
from test_web import RESULTS, exported_model, needs_browser
from test_webapp import OTHER_BOT, db, port, webapp_bot

from storage import Photo, Prediction, WebAppSend
from web.browser import camera_frame, launch_options, write_y4m
from web.server import serving

pytestmark = needs_browser
THEME = {
    "bg_color": "#17212b",
    "text_color": "#f5f5f5",
    "hint_color": "#aab7c4",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#232e3c",
}
# Telegram's app side of the bridge: what the page asks of it, kept for the test to read.
TELEGRAM_APP = """
window.telegramEvents = [];
window.TelegramWebviewProxy = {
  postEvent(type, data) { window.telegramEvents.push([type, data ? JSON.parse(data) : null]); },
};
"""
MAIN_BUTTON = """() => {
  const setups = window.telegramEvents.filter(([type]) => type === 'web_app_setup_main_button');
  return setups.length ? setups[setups.length - 1][1] : null;
}"""
BACK_BUTTON = """() => {
  const setups = window.telegramEvents.filter(([type]) => type === 'web_app_setup_back_button');
  return setups.length ? setups[setups.length - 1][1].is_visible : null;
}"""


def launch_url(page_url: str, init_data: str) -> str:
    """The page's URL as Telegram opens it: the launch parameters in the fragment."""
    fields = {
        "tgWebAppData": init_data,
        "tgWebAppVersion": "8.0",
        "tgWebAppPlatform": "android",
        "tgWebAppThemeParams": json.dumps(THEME),
    }
    return page_url + "#" + "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())


async def opened_in_telegram(browser, url: str):
    context = await browser.new_context(viewport={"width": 420, "height": 900})
    context.on("console", lambda m: print(f"console {m.type}: {m.text}"))
    await context.add_init_script(TELEGRAM_APP)
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("document.body.dataset.telegram === 'yes'", timeout=60_000)
    return page


async def main_button(page) -> dict | None:
    return await page.evaluate(MAIN_BUTTON)


async def press_main_button(page) -> dict:
    """Once the main button shows, press it: the button as it was shown."""
    await page.wait_for_function(f"({MAIN_BUTTON})()?.is_visible === true", timeout=120_000)
    shown = await main_button(page)
    await page.evaluate("Telegram.WebView.receiveEvent('main_button_pressed')")
    return shown


async def sent_line(page, starts: str) -> str:
    line = page.locator("#sent")
    await line.filter(has_text=starts).wait_for(timeout=120_000)
    return await line.text_content()


@pytest.fixture
def page_url(exported_model, webapp_bot, port):
    with serving(exported_model, webapp_backend=f"http://127.0.0.1:{port}") as url:
        yield url


@pytest.mark.asyncio
async def test_a_frozen_frame_sent_from_telegram_is_answered_in_the_chat_and_tapped(
    tg, db, page_url, sample_photos, tmp_path
) -> None:
    from playwright.async_api import async_playwright

    photo, index, name = next(s for s in sample_photos if s[2] == "sunflower")
    video = write_y4m(camera_frame(photo), tmp_path / "camera.y4m")
    tg.set_user(ALICE, language_code="es")
    tg.user_command(ALICE, "start")
    await tg.wait_for("sendMessage", chat_id=ALICE)
    async with async_playwright() as p:
        browser = await p.chromium.launch(**launch_options(fake_camera=video))
        page = await opened_in_telegram(browser, launch_url(page_url, tg.webapp_init_data(ALICE)))
        # Telegram's theme and the signed user's language (Spanish).
        paper = "getComputedStyle(document.documentElement).getPropertyValue('--paper').trim()"
        assert await page.evaluate(paper) == THEME["bg_color"]
        intro = await page.locator("header p").text_content()
        assert "only when you tap “Send to the bot”" in intro
        await page.wait_for_function(
            "+document.getElementById('species').dataset.predictions >= 2", timeout=120_000
        )
        assert await page.evaluate("document.getElementById('verdict').lang") == "es"
        assert (await main_button(page) or {}).get("is_visible") is not True  # live: no send

        await page.get_by_role("button", name="Freeze").click()
        assert await page.evaluate(BACK_BUTTON) is True
        mark = tg.mark()
        assert (await press_main_button(page))["text"] == "Send to the bot"
        assert "Sent" in await sent_line(page, "Sent")
        answer = (await tg.wait_for("sendMessage", chat_id=ALICE, after=mark)).result
        # In the user's Spanish, page and bot: the same name first.
        shown_name = await page.locator("#species li .name").first.text_content()
        assert shown_name.lower() != name.lower()
        assert tg.keyboard(answer)[0][0]["text"].lower() == shown_name.lower()
        # The page's answer is kept beside the server's, with the same top-1.
        stored = in_db(db, lambda s: s.scalars(select(WebAppSend)).one())
        assert stored.page_top5[0]["index"] == index
        server_top1 = in_db(db, lambda s: s.get(Prediction, stored.prediction_id).top5[0])
        assert server_top1["index"] == index
        await page.screenshot(path=_results("webapp-sent.png"))

        # A tap on the answer in the chat is feedback, as under a chat photo.
        tap = tg.mark()
        tg.press_button(answer, tg.keyboard(answer)[0][0]["text"], user_id=ALICE)
        await tg.wait_for("editMessageText", chat_id=ALICE, after=tap)
        assert [(r[0], r[1], r[2]) for r in feedback_rows(db)] == [
            (ALICE, stored.prediction_id, index)
        ]
        # The back button returns to the live camera; sent once, the button is gone.
        await page.evaluate("Telegram.WebView.receiveEvent('back_button_pressed')")
        await page.wait_for_function("document.body.dataset.mode === 'live'")
        assert (await main_button(page))["is_visible"] is False
        await browser.close()
    assert count(db, Photo) == 1


@pytest.mark.asyncio
async def test_refused_sends_say_why_on_the_page_and_store_nothing(
    tg, db, page_url, sample_photos, tmp_path
) -> None:
    from playwright.async_api import async_playwright

    tg.user_command(ALICE, "start")
    photo = sample_photos[0][0]
    # Over the bot's limit (the fixture's MAX_DOWNLOAD_MB=1): a 1.2 MB PNG.
    noise = Image.frombytes("RGB", (900, 900), random.Random(2).randbytes(900 * 900 * 3))
    big = tmp_path / "big.png"
    noise.save(big)
    assert big.stat().st_size > 1024 * 1024
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not an image")
    async with async_playwright() as p:
        browser = await p.chromium.launch(**launch_options())
        # Init data of another bot: the bot refuses, the page says where to open it from.
        forged = tg.webapp_init_data(ALICE, token=OTHER_BOT)
        page = await opened_in_telegram(browser, launch_url(page_url, forged))
        await choose(page, photo)
        await press_main_button(page)
        assert "Open this page from the bot in Telegram" in await sent_line(page, "Open")
        await page.context.close()

        page = await opened_in_telegram(browser, launch_url(page_url, tg.webapp_init_data(ALICE)))
        await choose(page, big)
        await press_main_button(page)
        assert "1 MB" in await sent_line(page, "That file is too large")
        # Not an image: the page cannot show it, and nothing can be sent.
        await page.set_input_files("#file", str(not_an_image))
        await page.locator("#status").filter(has_text="not an image").wait_for()
        assert not (await main_button(page))["is_visible"]
        await browser.close()
    assert count(db, Photo) == count(db, WebAppSend) == 0


@pytest.mark.asyncio
async def test_a_photo_sent_offline_goes_once_the_network_is_back_and_only_once(
    tg, db, page_url, sample_photos
) -> None:
    from playwright.async_api import async_playwright

    tg.user_command(ALICE, "start")
    photo = sample_photos[1][0]
    async with async_playwright() as p:
        browser = await p.chromium.launch(**launch_options())
        page = await opened_in_telegram(browser, launch_url(page_url, tg.webapp_init_data(ALICE)))
        await page.wait_for_function("document.body.dataset.offline === 'ready'", timeout=120_000)
        await choose(page, photo)
        await page.context.set_offline(True)
        await press_main_button(page)
        assert "kept on this device" in await sent_line(page, "Offline")
        assert count(db, Photo) == 0
        await page.context.set_offline(False)
        assert "Sent" in await sent_line(page, "Sent")
        # Reopened later: nothing waits, nothing goes again.
        await page.reload()
        await page.wait_for_function("document.body.dataset.telegram === 'yes'", timeout=60_000)
        await page.wait_for_timeout(1000)
        await browser.close()
    assert count(db, Photo) == count(db, WebAppSend) == 1
    assert len([c for c in tg.calls("sendPhoto") if c.ok]) == 1


async def choose(page, path: Path) -> None:
    """A photo chosen and its answer shown."""
    await page.locator("#camera-note").filter(has_text="Choose a photo").wait_for(timeout=120_000)
    await page.set_input_files("#file", str(path))
    await page.wait_for_function(
        f"document.getElementById('species').dataset.source === {json.dumps(path.name)}",
        timeout=120_000,
    )


def _results(name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / name


def test_webapp_benchmark_answers_within_the_goal_and_agrees_with_the_page() -> None:
    """bench/webapp.py, small: every send stored and answered within the goal, and the bot's
    top-1 is the page's on every photo, samples and real-world ones."""
    output = run_bench("webapp", "--sends", "3", "--realworld", "2", timeout=900)
    rows = [table_cells(line) for line in output.splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in rows] == ["sample photos", "flower_photos (real world)"]
    for name, sends, _, p95, _, agree in rows:
        assert 0 < float(p95.removesuffix(" s")) <= 2.0, (name, p95)
        assert agree == f"{sends}/{sends}", (name, agree)
