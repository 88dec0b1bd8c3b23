"""Production mode: the health endpoint, following the registry, the authenticated webhook, and
(slow) two bot processes on one PostgreSQL and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import SHARED, SHIPPED_MODEL, free_port
from fake_telegram import WEBHOOK, FakeTelegram
from sqlalchemy import func, select
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

from bot import replies
from bot.app import build_application, webhook_options
from bot.config import Settings
from bot.services import jpeg_bytes
from model_training.artifact import ModelFolderError
from model_training.classifier import FlowerClassifier
from model_training.photos import read_photo
from storage import (
    Database,
    Feedback,
    InstanceSetting,
    ModelStatus,
    ModelVersion,
    Photo,
    Prediction,
    add_photo,
    add_prediction,
    add_version,
    ensure_user,
    promote,
    record_feedback,
    store_model_files,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def db(tmp_path: Path) -> Path:  # the bot's SQLite file (conftest's `db` is a Database)
    return tmp_path / "bot.sqlite"


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
    cache = tmp_path / "cache"
    app = await running(settings_for(tg, db, registry_poll_seconds=0.3, model_registry_dir=cache))
    try:
        assert serving_classifier(app).version == SHIPPED_VERSION
        folder = model_copy(tmp_path / "elsewhere", "v2-elsewhere")

        def promote_elsewhere(session) -> None:  # what a retraining on another machine does
            row = add_version(session, "v2-elsewhere", str(folder), ModelStatus.CANDIDATE, {})
            store_model_files(session, row, folder)
            promote(session, "v2-elsewhere")

        in_db(db, promote_elsewhere)
        shutil.rmtree(folder)  # that machine's folder: out of reach here
        for _ in range(100):
            if serving_classifier(app).version == "v2-elsewhere":
                break
            await asyncio.sleep(0.1)
        assert serving_classifier(app).version == "v2-elsewhere"
        # Fetched from the database into this process's cache, nothing else left there.
        assert [p.name for p in cache.iterdir()] == ["v2-elsewhere"]
        fetched = {p.name for p in (cache / "v2-elsewhere").iterdir()}
        assert fetched == {p.name for p in SHIPPED_MODEL.iterdir()}
    finally:
        await stopped(app)


async def test_a_first_version_registered_on_another_machine_is_found_in_model_dir(tg, db):
    """The shipped model, registered by a process whose package sits elsewhere, is this
    machine's MODEL_DIR; a version neither stored nor anywhere here stops the start in one line."""

    database = Database(f"sqlite:///{db}")
    database.upgrade()
    database.dispose()

    def register_elsewhere(session) -> None:
        add_version(session, SHIPPED_VERSION, "/machine-a/oxford102", ModelStatus.SERVING, {})

    in_db(db, register_elsewhere)
    app = await running(settings_for(tg, db))
    try:
        assert serving_classifier(app).version == SHIPPED_VERSION
    finally:
        await stopped(app)

    def serve_a_lost_version(session) -> None:
        add_version(session, "v-lost", "/machine-a/v-lost", ModelStatus.CANDIDATE, {})
        promote(session, "v-lost")

    in_db(db, serve_a_lost_version)
    with pytest.raises(ModelFolderError) as raised:
        build_application(settings_for(tg, db))
    assert str(raised.value) == (
        "model v-lost is neither in the database nor in /machine-a/v-lost (nor is it MODEL_DIR's)"
    )


# -- the webhook --------------------------------------------------------------------------------
ADMIN_2 = ADMIN + 1  # a second admin
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


# -- bot processes, as an operator runs them (slow) ------------------------------------------------
FLOWERBOT = Path(sys.executable).with_name("flowerbot")


class BotProcess:
    """`flowerbot bot` in its own process and working folder, configured by environment only."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port, self.health_port = free_port(), free_port()
        env = {
            **os.environ,
            **env,
            "WEBHOOK_LISTEN": "127.0.0.1",
            "WEBHOOK_PORT": str(self.port),
            "HEALTH_PORT": str(self.health_port),
        }
        self.log = folder / "bot.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [FLOWERBOT, "bot"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict | None:
        try:
            return get_json(f"http://127.0.0.1:{self.health_port}/healthz")[1]
        except OSError:
            return None

    async def until_healthy(self, version: str, timeout: float = 240) -> None:
        for _ in range(int(timeout / 0.5)):
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            health = await asyncio.to_thread(self.health)
            if health is not None and health["model_version"] == version:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"not serving {version}: {health}\n{self.log.read_text()[-3000:]}")

    def terminate(self) -> None:
        """SIGTERM, as docker stop or systemd send it (once: a second one cuts the shutdown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        self.terminate()
        return self.process.wait(timeout=120)


def bot_env(tg: FakeTelegram, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": tg.base_url,
        "TELEGRAM_FILE_BASE_URL": tg.base_file_url,
        "DATABASE_URL": database_url,
        "ADMIN_IDS": f"{ADMIN},{ADMIN_2}",
        "WEBHOOK_URL": HOOK_URL,
        **extra,
    }


def answers_per_photo(tg: FakeTelegram, photos: list[dict]) -> list[int]:
    """How many replies the bot sent to each photo message."""
    replied = Counter(
        (c.params["chat_id"], c.params.get("reply_parameters", {}).get("message_id"))
        for c in tg.calls("sendMessage")
        if c.ok
    )
    return [replied[(p["chat"]["id"], p["message_id"])] for p in photos]


def rows(database: Database, model: type) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.2)):
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def label_tulips(database: Database, classifier: FlowerClassifier) -> int:
    """Six users named 25 tulip photos each "pink primrose" (Oxford has no tulips): enough for
    a retraining to learn them and be promoted (28 held-out photos gained, none lost, base
    held-out top-1 down 0.2 points). Returns how many photos."""
    folder = SHARED / "data" / "flower_photos"
    with (folder / "labels.csv").open(newline="") as f:
        files = [row["file"] for row in csv.DictReader(f) if row["folder"] == "tulips"][:30]
    answers = classifier.answers([read_photo(folder / file) for file in files])
    species = classifier.class_names[0]
    with database.session() as session:
        for n in range(150):
            user, answer = 5000 + n // 25, answers[n % len(answers)]
            ensure_user(session, user)
            photo = add_photo(
                session, user, user, n, "0" * 64, jpeg_bytes(answer.image), answer.features
            )
            top5 = answer.as_json()["top5"]
            prediction = add_prediction(session, photo.id, SHIPPED_VERSION, top5, 10.0)
            record_feedback(session, photo.id, prediction.id, user, 0, species)
    return 150


@pytest.mark.slow
async def test_two_processes_share_one_postgresql_behind_one_webhook(
    tg, postgres_url, tmp_path, sample_photos, classifier
):
    database = Database(postgres_url)
    database.upgrade()
    seeded = label_tulips(database, classifier)
    folder = model_copy(tmp_path, "v2-swap")
    with database.session() as session:  # in the database only: no folder any process can read
        row = add_version(session, "v2-swap", str(folder), ModelStatus.CANDIDATE, {})
        store_model_files(session, row, folder)
    shutil.rmtree(folder)
    env = bot_env(tg, postgres_url, PHOTOS_PER_MINUTE="3", REGISTRY_POLL_SECONDS="1")
    # Nothing shared but the database: each process has its own model cache.
    caches = [tmp_path / name / "cache" for name in ("a", "b")]
    bots = [BotProcess(cache.parent, {**env, "MODEL_REGISTRY_DIR": str(cache)}) for cache in caches]
    try:
        for bot in bots:
            await bot.until_healthy(SHIPPED_VERSION)
        tg.balance_webhook([bot.base_url for bot in bots])  # alternating, like a load balancer

        # Four users send three photos each, and one of them a fourth: over the limit of 3.
        users = [ALICE, ALICE + 1, ALICE + 2, ALICE + 3]
        photos = [
            tg.user_photo(user, sample_photos[i % len(sample_photos)][0].read_bytes())
            for i in range(3)
            for user in users
        ]
        extra = tg.user_photo(ALICE, sample_photos[0][0].read_bytes())

        def limited() -> list[int]:
            texts = [c for c in tg.calls("sendMessage") if c.params["text"] == replies.RATE_LIMITED]
            return [c.params["chat_id"] for c in texts]

        sent = [*photos, extra]
        await until(lambda: sum(answers_per_photo(tg, sent)) == 12 and limited(), 180, "answers")
        await asyncio.sleep(1)  # room for a duplicate to show up
        assert max(answers_per_photo(tg, sent)) == 1  # no photo answered twice
        assert limited() == [ALICE]  # the limit held across the two processes

        # Every answer gets a tap; each is recorded once.
        answers = [c.result for c in tg.calls("sendMessage") if "reply_markup" in c.params]
        assert len(answers) == 12
        for answer in answers:
            top1 = species_buttons(tg, answer)[0]
            tg.press_button(answer, top1, user_id=answer["chat"]["id"])
        await until(lambda: rows(database, Feedback) == seeded + 12, 60, "feedback")
        await asyncio.sleep(1)
        assert (rows(database, Feedback), rows(database, Photo)) == (seeded + 12, seeded + 12)

        # Two admins ask for a retraining at once, each reaching another process: one runs.
        mark = tg.mark()
        tg.user_command(ADMIN, "retrain")
        tg.user_command(ADMIN_2, "retrain")
        busy = await tg.wait_for(
            "sendMessage", lambda c: c.params["text"] == replies.RETRAIN_BUSY, after=mark
        )
        # The lock holder says "started" once it holds the lock; the other process may say
        # "busy" first, so wait for "started" too, then for room for a second one.
        await tg.wait_for(
            "sendMessage", lambda c: c.params["text"] == replies.RETRAIN_STARTED, after=mark
        )
        await asyncio.sleep(1)
        started = [c for c in tg.calls()[mark:] if c.params.get("text") == replies.RETRAIN_STARTED]
        assert len(started) == 1 and started[0].params["chat_id"] != busy.params["chat_id"]
        await tg.wait_for(
            "sendMessage",
            lambda c: (
                c.params["chat_id"] == started[0].params["chat_id"]
                and c.params["text"] != replies.RETRAIN_STARTED
            ),
            after=mark,
            timeout=600,
        )
        with database.session() as session:
            retrained = session.scalars(
                select(ModelVersion).where(ModelVersion.version.like("r%"))
            ).all()
        assert [(r.status, r.metrics["gate"]["reason"]) for r in retrained] == [
            (ModelStatus.SERVING, "promoted")
        ]
        version = retrained[0].version

        # Promoted on one process, it reaches the other through the registry, which fetches its
        # files from the database into its own cache (REGISTRY_POLL_SECONDS=1; loading takes
        # longer on this machine). So does a swap (/rollback) to a version only in the database.
        for bot in bots:
            await bot.until_healthy(version, timeout=30)
        assert await command(tg, ADMIN, "rollback", "v2-swap") == "Now serving v2-swap."
        for bot in bots:
            await bot.until_healthy("v2-swap", timeout=30)
        for cache in caches:
            assert sorted(p.name for p in cache.iterdir()) == sorted([version, "v2-swap"])
    finally:
        codes = [bot.stop() for bot in bots]
        database.dispose()
    assert codes == [0, 0]


@pytest.mark.slow
async def test_sigterm_during_a_burst_answers_or_leaves_every_photo(
    tg, db, tmp_path, sample_photos
):
    """SIGTERM while photos pour in: each photo the bot accepted is answered before it exits, the
    rest stay with Telegram and are answered after a restart; none is stored half or twice."""
    env = bot_env(tg, f"sqlite:///{db}", PHOTOS_PER_MINUTE="100")
    first = BotProcess(tmp_path / "first", env)
    await first.until_healthy(SHIPPED_VERSION)
    tg.balance_webhook([first.base_url])

    def send(users: range) -> list[dict]:
        return [
            tg.user_photo(ALICE + i, sample_photos[i % len(sample_photos)][0].read_bytes())
            for i in users
        ]

    photos = send(range(12))
    await until(lambda: sum(answers_per_photo(tg, photos)) >= 1, 120, "a first answer")
    first.terminate()
    photos += send(range(12, 20))  # the burst goes on while the bot shuts down
    assert first.process.wait(timeout=120) == 0  # a clean exit
    answered = answers_per_photo(tg, photos)
    accepted = {c.params["update_id"] for c in tg.calls(WEBHOOK) if c.ok}  # 2xx deliveries
    assert sum(answered) == len(accepted)  # every accepted photo answered, before the exit
    assert max(answered) == 1
    info = get_json(f"{tg.base_url}{tg.token}/getWebhookInfo")[1]["result"]
    assert info["pending_update_count"] == len(photos) - len(accepted) > 0
    in_database = in_db(db, lambda s: s.scalar(select(func.count()).select_from(Photo)))
    with_prediction = in_db(
        db, lambda s: s.scalar(select(func.count(func.distinct(Prediction.photo_id))))
    )
    assert in_database == with_prediction == sum(answered)

    # Telegram redelivers the rest to the restarted bot: every photo answered exactly once.
    second = BotProcess(tmp_path / "second", env)
    try:
        await second.until_healthy(SHIPPED_VERSION)
        tg.balance_webhook([second.base_url])
        await until(lambda: min(answers_per_photo(tg, photos)) >= 1, 120, "the other answers")
        assert answers_per_photo(tg, photos) == [1] * len(photos)
    finally:
        assert second.stop() == 0
    assert in_db(db, lambda s: s.scalar(select(func.count()).select_from(Photo))) == len(photos)
