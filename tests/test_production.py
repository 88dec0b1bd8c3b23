"""Production mode: the health endpoint, following the registry, the authenticated webhook, and
(slow) two bot processes on one PostgreSQL and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHIPPED_MODEL
from fake_telegram import FakeTelegram
from test_bot import (
    SHIPPED_VERSION,
    TOKEN,
    in_db,
    running,
    serving_classifier,
    settings_for,
    stopped,
)

from storage import Database, ModelStatus, add_version, promote

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
