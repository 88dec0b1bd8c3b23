"""Production mode: the health endpoint, following the registry, the authenticated webhook, and
(slow) two bot processes on one PostgreSQL and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import SHIPPED_MODEL
from fake_telegram import WEBHOOK, FakeTelegram
from telegram.ext import Application
from test_bot import (
    ADMIN,
    ALICE,
    SHIPPED_VERSION,
    TOKEN,
    answer_to_photo,
    command,
    feedback_rows,
    in_db,
    prediction_under,
    running,
    serving_classifier,
    settings_for,
    species_buttons,
    stopped,
    tap,
)

from bot.app import build_application, webhook_options
from bot.config import Settings
from storage import Database, InstanceSetting, ModelStatus, add_version, promote

pytestmark = pytest.mark.asyncio


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> Path:  # the bot's SQLite file (conftest's `db` is a Database)
    return tmp_path / "bot.sqlite"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post_update(url: str, update: dict, secret: str | None) -> int:
    """POST an update as Telegram would (or a stranger, without the secret); the HTTP status."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, json.dumps(update).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def model_copy(tmp_path: Path, version: str) -> Path:
    """The shipped model folder under another version name, as a retraining would write it."""
    folder = tmp_path / version
    shutil.copytree(SHIPPED_MODEL, folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "version": version}))
    return folder


async def test_health_reports_the_model_and_the_database(tg, db):
    port = free_port()
    app = await running(settings_for(tg, db, health_port=port))
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        status, body = await asyncio.to_thread(get_json, url)
        assert (status, body) == (200, {"model_version": SHIPPED_VERSION, "database": "ok"})
        # The database goes away (a folder that does not exist): unhealthy, and says why.
        services = app.bot_data["services"]
        healthy_database = services.database
        services.database = Database(f"sqlite:///{db.parent / 'missing' / 'bot.sqlite'}")
        status, body = await asyncio.to_thread(get_json, url)
        assert (status, body["database"]) == (503, "unreachable")
        services.database.dispose()
        services.database = healthy_database
    finally:
        await stopped(app)


async def test_a_version_promoted_elsewhere_is_served_within_the_poll_interval(tg, db, tmp_path):
    app = await running(settings_for(tg, db, registry_poll_seconds=0.3))
    try:
        assert serving_classifier(app).version == SHIPPED_VERSION
        folder = model_copy(tmp_path, "v2-elsewhere")

        def promote_elsewhere(session) -> None:  # what another process's /rollback does
            add_version(session, "v2-elsewhere", str(folder), ModelStatus.CANDIDATE, {})
            promote(session, "v2-elsewhere")

        in_db(db, promote_elsewhere)
        for _ in range(100):
            if serving_classifier(app).version == "v2-elsewhere":
                break
            await asyncio.sleep(0.1)
        assert serving_classifier(app).version == "v2-elsewhere"
    finally:
        await stopped(app)


# -- the webhook --------------------------------------------------------------------------------
HOOK_URL = "https://bot.example.org/hook"  # what Telegram is given; a reverse proxy forwards it


def webhook_settings(tg: FakeTelegram, db: Path, port: int, **overrides: object) -> Settings:
    return settings_for(
        tg,
        db,
        webhook_url=HOOK_URL,
        webhook_listen="127.0.0.1",
        webhook_port=port,
        **overrides,
    )


async def running_webhook(settings: Settings) -> Application:
    """What bot.app.run does in webhook mode, without taking over the event loop."""
    app = build_application(settings)
    await app.initialize()
    await app.post_init(app)
    await app.start()
    await app.updater.start_webhook(**webhook_options(settings, app.bot_data["services"].database))
    return app


@pytest_asyncio.fixture
async def webhook_bot(tg: FakeTelegram, db: Path) -> AsyncIterator[tuple[Application, int]]:
    """A bot behind the webhook, reached the way a reverse proxy for HOOK_URL would reach it."""
    port = free_port()
    app = await running_webhook(webhook_settings(tg, db, port))
    tg.balance_webhook([f"http://127.0.0.1:{port}"])
    yield app, port
    await stopped(app)


async def test_a_forged_update_is_refused_and_changes_nothing(tg, webhook_bot):
    _, port = webhook_bot
    # The real /stats, delivered by Telegram with the secret, is answered.
    assert "Last day: 0 photos" in await command(tg, ADMIN, "stats")
    genuine = (await tg.wait_for(WEBHOOK)).result
    secret = tg.webhook["secret_token"]
    mark = tg.mark()
    forged = {**genuine, "update_id": genuine["update_id"] + 1000}
    hook = f"http://127.0.0.1:{port}/hook"
    statuses = [
        await asyncio.to_thread(post_update, hook, forged, None),
        await asyncio.to_thread(post_update, hook, forged, "guessed-" + secret[:8]),
        await asyncio.to_thread(post_update, f"http://127.0.0.1:{port}/", forged, secret),
    ]
    assert statuses == [403, 403, 404]
    # Nothing answered the forged ones: the next reply is to a genuine command sent after them.
    assert "Last day: 0 photos" in await command(tg, ADMIN, "stats")
    replies = [
        c for c in tg.calls()[mark:] if c.method == "sendMessage" and c.params["chat_id"] == ADMIN
    ]
    assert len(replies) == 1


async def test_photo_answer_and_feedback_through_the_webhook(tg, webhook_bot, sample_photos, db):
    reply = await answer_to_photo(tg, ALICE, sample_photos[0][0].read_bytes())
    top1 = species_buttons(tg, reply)[0]
    await tap(tg, reply, top1)
    assert tg.calls("getUpdates") == []  # everything came by webhook
    assert tg.webhook["url"] == HOOK_URL
    [row] = feedback_rows(db)
    assert row[:2] == (ALICE, prediction_under(tg, reply))


async def test_the_generated_secret_is_kept_and_polling_deletes_the_webhook(tg, db):
    app = await running_webhook(webhook_settings(tg, db, free_port()))
    await stopped(app)
    first = tg.webhook["secret_token"]
    app = await running_webhook(webhook_settings(tg, db, free_port()))
    await stopped(app)
    assert tg.webhook["secret_token"] == first  # kept in the database, not made anew
    stored = in_db(db, lambda s: s.get(InstanceSetting, "webhook_secret").value)
    assert stored == first and len(first) >= 32
    # WEBHOOK_SECRET, when set, is the one sent.
    app = await running_webhook(webhook_settings(tg, db, free_port(), webhook_secret="op-chosen"))
    await stopped(app)
    assert tg.webhook["secret_token"] == "op-chosen"
    # Back to polling: the webhook is deleted and getUpdates works again.
    app = await running(settings_for(tg, db))
    await stopped(app)
    assert tg.webhook is None
