"""Retraining from feedback, end to end: the fake Bot API, the real model, a real SQLite database
and real training in a child process, from nothing but the model folder (its base.npz) and the
database.

Users label photos through the bot's buttons. A handful of labels is far from the 20 held-out
feedback photos the gate needs, so every retraining here is recorded but not promoted; the
learning experiment that does get a candidate promoted is tests/test_learning.py."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import SHARED, SHIPPED_MODEL
from fake_telegram import FakeTelegram, record_new_species
from sqlalchemy import select
from telegram.ext import Application
from test_bot import (
    ADMIN,
    ALICE,
    BOB,
    SHIPPED_VERSION,
    TOKEN,
    reply_to,
    running,
    species_buttons,
    stopped,
    tap,
)

from bot.config import Settings
from bot.services import Services
from model_training.artifact import BASE_FILE, load_artifact
from model_training.heldout import held_out
from model_training.retrain import MIN_HELDOUT
from storage import (
    Database,
    ModelStatus,
    Photo,
    Prediction,
    add_version,
    count_labelled_examples,
    labelled_examples,
    list_versions,
    lock_holder,
    new_labels_since_last_run,
    release_lock,
    serving_version,
    take_lock,
)

# Each retraining fits the product recipe on the base rows again: about a minute on two cores.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

RETRAIN_TIMEOUT = 900
FIRST_HELD_OUT = next(i for i in range(1, 100) if held_out(i))  # photo 9
EARLIER = "oxford102-earlier"
PERCENT_WITH_INTERVAL = r"\d+\.\d% \(\d+\.\d% to \d+\.\d%\)"


def retrain_settings(tg: FakeTelegram, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "telegram_bot_token": TOKEN,
        "database_url": f"sqlite:///{tmp_path / 'bot.sqlite'}",
        "model_dir": SHIPPED_MODEL,
        "admin_ids": str(ADMIN),
        "telegram_api_base_url": tg.base_url,
        "telegram_file_base_url": tg.base_file_url,
        "photos_per_minute": 100,
        "model_registry_dir": tmp_path / "registry",
        "health_port": 0,
    }
    return Settings(**{**values, **overrides})


@pytest_asyncio.fixture
async def bot(tg: FakeTelegram, tmp_path: Path) -> AsyncIterator[Application]:
    app = await running(retrain_settings(tg, tmp_path))
    yield app
    await stopped(app)
    assert tg.unknown_methods == []


def svc(app: Application) -> Services:
    return app.bot_data["services"]


def database(app: Application) -> Database:
    return svc(app).database


def serving_now(app: Application) -> str:
    """The version the bot answers with, and the registry's serving version: the same."""
    with database(app).session() as session:
        row = serving_version(session)
        assert row is not None
        registered = row.version
    assert svc(app).identifier.classifier.version == registered
    return registered


async def ask(tg: FakeTelegram, user: int, photo: bytes) -> dict:
    mark = tg.mark()
    tg.user_photo(user, photo)
    return await reply_to(tg, user, mark)


async def command(tg: FakeTelegram, user: int, name: str, args: str = "", n: int = 1) -> list[str]:
    """Send a command and return the texts of the bot's next n replies to it."""
    mark = tg.mark()
    tg.user_command(user, name, args)
    texts = []
    for _ in range(n):
        reply = await reply_to(tg, user, mark, timeout=RETRAIN_TIMEOUT)
        texts.append(reply["text"])
        mark = next(i for i, c in enumerate(tg.calls()) if c.result is reply) + 1
    return texts


async def label(tg: FakeTelegram, sample_photos: list, n: int) -> None:
    """Alice and Bob send n sample photos and tap the right species (the bot's first guess
    where the right one is not among its five): n labelled photos, ids 1..n."""
    for k, (path, _, name) in enumerate(sample_photos[:n]):
        user = (ALICE, BOB)[k % 2]
        reply = await ask(tg, user, path.read_bytes())
        buttons = species_buttons(tg, reply)
        await tap(
            tg, reply, name.capitalize() if name.capitalize() in buttons else buttons[0], user
        )


def held_out_and_training(app: Application) -> tuple[int, int]:
    """The labelled photos the gate holds out (model_training.heldout.held_out) and those that
    train."""
    with database(app).session() as session:
        ids = [e.photo_id for e in labelled_examples(session)]
    held = sum(1 for i in ids if held_out(i))
    return held, len(ids) - held


async def test_non_admins_are_refused_and_nothing_runs(tg, bot):
    admin_only = [
        ("retrain", ""),
        ("models", ""),
        ("rollback", "x"),
        ("exclude", "42"),
        ("species", ""),
        ("addspecies", "Tulip"),
    ]
    for name, args in admin_only:
        assert "only for the bot's administrators" in (await command(tg, BOB, name, args))[0]
    assert svc(bot).retrain_process is None
    with database(bot).session() as session:
        assert lock_holder(session) is None
        assert len(list_versions(session)) == 1


async def test_too_few_held_out_feedback_photos_keep_the_serving_model(tg, bot, sample_photos):
    await label(tg, sample_photos, len(sample_photos))
    held, training = held_out_and_training(bot)
    assert 0 < held < MIN_HELDOUT

    started, report = await command(tg, ADMIN, "retrain", n=2)
    assert "Retraining started" in started
    lines = report.splitlines()
    version = lines[0].split(":")[0]
    assert lines[0] == (
        f"{version}: not promoted: only {held} held-out feedback photos (needs {MIN_HELDOUT})."
    )
    assert re.fullmatch(
        rf"Held-out feedback \({held} photos\): {PERCENT_WITH_INTERVAL} → "
        rf"{PERCENT_WITH_INTERVAL}; McNemar p = \S+ \(\d+ gained, \d+ lost\)",
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        rf"Base held-out: {PERCENT_WITH_INTERVAL} → {PERCENT_WITH_INTERVAL}", lines[2]
    ), lines[2]
    assert re.fullmatch(rf"Trained on {training} labelled photos; took \d+\.\d s\.", lines[-1])

    assert serving_now(bot) == SHIPPED_VERSION
    with database(bot).session() as session:
        assert lock_holder(session) is None
        assert new_labels_since_last_run(session) == 0  # this run has seen every label
        rows = list_versions(session)
        assert [(r.version, r.status) for r in rows] == [
            (SHIPPED_VERSION, ModelStatus.SERVING),
            (version, ModelStatus.REJECTED),
        ]
        candidate = rows[1]
    # The serving model's own base held-out figure, measured again on the folder's base rows.
    shipped = load_artifact(SHIPPED_MODEL).metadata.metrics
    before = candidate.metrics["before"]
    one_photo = 1 / shipped["heldout_photos"]
    assert abs(before["base_heldout_top1"] - shipped["heldout_top1"]) <= one_photo + 1e-9
    assert candidate.metrics["after"]["feedback_train"] == training
    # The candidate is kept whole, base rows included, so it could be retrained in its turn.
    assert (Path(candidate.path) / BASE_FILE).is_file()
    assert load_artifact(candidate.path).metadata.recipe["retrained_from"] == SHIPPED_VERSION

    listing = (await command(tg, ADMIN, "models"))[0]
    shipped_line, candidate_line = listing.splitlines()
    assert shipped_line.startswith(f"{SHIPPED_VERSION} serving, base held-out ")
    assert candidate_line.startswith(f"{version} rejected, base held-out ")
    assert f"only {held} held-out feedback photos (needs {MIN_HELDOUT})" in candidate_line
    # The bot still answers with the shipped model.
    await ask(tg, ALICE, sample_photos[0][0].read_bytes())
    with database(bot).session() as session:
        latest = session.scalars(select(Prediction).order_by(Prediction.id.desc())).first()
        assert latest.model_version == SHIPPED_VERSION


async def test_a_model_folder_without_base_rows_is_named_in_one_line(tg, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL, folder, ignore=shutil.ignore_patterns(BASE_FILE))
    app = await running(retrain_settings(tg, tmp_path, model_dir=folder))
    try:
        with database(app).session() as session:
            assert serving_version(session).path == str(folder)
        started, failed = await command(tg, ADMIN, "retrain", n=2)
        assert "Retraining started" in started
        assert "\n" not in failed and "Traceback" not in failed
        assert failed.startswith("Retraining failed (")
        assert "no base features in the model folder" in failed and str(folder) in failed
        assert failed.endswith("the current model keeps serving.")
        with database(app).session() as session:
            assert lock_holder(session) is None
            assert len(list_versions(session)) == 1
        assert serving_now(app) == SHIPPED_VERSION
        registry = tmp_path / "registry"
        assert not registry.exists() or not any(registry.iterdir())  # no candidate folder
    finally:
        await stopped(app)


async def test_a_retraining_already_running_elsewhere_is_not_started_twice(tg, bot):
    with database(bot).session() as session:
        assert take_lock(session, "elsewhere:1:abc", datetime.now(UTC), timedelta(minutes=5))
    [busy] = await command(tg, ADMIN, "retrain")
    # Busy alone: "started" is said only by the process that took the lock.
    assert busy == "A retraining is already running; try again when it has finished."
    await command(tg, ADMIN, "models")  # handled after /retrain: nothing more came in between
    assert [c.params["text"] for c in tg.calls("sendMessage")][-2:-1] == [busy]
    assert svc(bot).retrain_process is None
    with database(bot).session() as session:
        assert lock_holder(session) == "elsewhere:1:abc"  # theirs, untouched
        assert len(list_versions(session)) == 1
        release_lock(session, "elsewhere:1:abc")


async def test_a_killed_retraining_leaves_everything_consistent(tg, bot, sample_photos):
    await label(tg, sample_photos, FIRST_HELD_OUT)  # the last one held out: the run can score
    replies = asyncio.create_task(command(tg, ADMIN, "retrain", n=2))
    for _ in range(600):
        if svc(bot).retrain_process is not None:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)  # mid-way: the child is loading TensorFlow or the data
    svc(bot).retrain_process.kill()
    started, failed = await replies
    assert "Retraining started" in started
    assert failed == "Retraining failed (exit code -9); the current model keeps serving."
    assert serving_now(bot) == SHIPPED_VERSION
    with database(bot).session() as session:
        assert lock_holder(session) is None
        assert [v.version for v in list_versions(session)] == [SHIPPED_VERSION]
        assert new_labels_since_last_run(session) == FIRST_HELD_OUT  # not counted as seen
    registry = Path(svc(bot).settings.model_registry_dir)
    assert not registry.exists() or not any(registry.iterdir())  # not even a staging folder

    report = (await command(tg, ADMIN, "retrain", n=2))[1]
    assert "not promoted: only 1 held-out feedback photos (needs 20)" in report, report
    with database(bot).session() as session:
        assert lock_holder(session) is None
        assert [v.status for v in list_versions(session)] == [
            ModelStatus.SERVING,
            ModelStatus.REJECTED,
        ]
    assert serving_now(bot) == SHIPPED_VERSION


async def test_scheduler_retrains_only_once_enough_new_labels_arrived(tg, tmp_path, sample_photos):
    settings = retrain_settings(
        tg, tmp_path, retrain_cron="* * * * *", retrain_min_new_labels=FIRST_HELD_OUT
    )
    app = await running(settings)
    try:
        (job,) = app.job_queue.get_jobs_by_name("retrain")

        async def scheduled_run() -> None:
            job.job.modify(next_run_time=datetime.now(UTC))
            await asyncio.sleep(2)

        await scheduled_run()  # no labels yet: skipped
        assert svc(app).retrain_process is None
        with database(app).session() as session:
            assert len(list_versions(session)) == 1 and lock_holder(session) is None

        await label(tg, sample_photos, FIRST_HELD_OUT - 1)
        await scheduled_run()  # one label short: skipped
        with database(app).session() as session:
            assert len(list_versions(session)) == 1 and lock_holder(session) is None

        await label(tg, sample_photos[FIRST_HELD_OUT - 1 :], 1)
        await scheduled_run()
        for _ in range(RETRAIN_TIMEOUT):  # until the run has recorded its candidate
            with database(app).session() as session:
                if len(list_versions(session)) == 2 and lock_holder(session) is None:
                    break
            await asyncio.sleep(1)
        else:
            raise AssertionError("the scheduled retraining recorded nothing")
        with database(app).session() as session:
            candidate = list_versions(session)[1]
            assert candidate.status == ModelStatus.REJECTED
            assert candidate.metrics["gate"]["reason"] == (
                f"only 1 held-out feedback photos (needs {MIN_HELDOUT})"
            )
            assert new_labels_since_last_run(session) == 0
        assert serving_now(app) == SHIPPED_VERSION

        await scheduled_run()  # nothing new since that run: skipped
        with database(app).session() as session:
            assert len(list_versions(session)) == 2
    finally:
        await stopped(app)


async def test_models_lists_versions_and_rollback_swaps_the_served_one(
    tg, bot, tmp_path, sample_photos
):
    """An earlier version (the shipped folder under another name) is brought back and left."""
    earlier = tmp_path / "earlier"
    shutil.copytree(SHIPPED_MODEL, earlier)
    metadata = (earlier / "metadata.json").read_text()
    (earlier / "metadata.json").write_text(metadata.replace(SHIPPED_VERSION, EARLIER, 1))
    with database(bot).session() as session:
        add_version(session, EARLIER, str(earlier), ModelStatus.RETIRED, {"top1": 0.9})

    listing = (await command(tg, ADMIN, "models"))[0].splitlines()
    assert listing[0].startswith(f"{SHIPPED_VERSION} serving, base held-out ")
    assert listing[1].startswith(f"{EARLIER} retired, test top-1 90.0%, ")

    assert (await command(tg, ADMIN, "rollback", EARLIER))[0] == f"Now serving {EARLIER}."
    assert serving_now(bot) == EARLIER
    await ask(tg, ALICE, sample_photos[0][0].read_bytes())
    with database(bot).session() as session:
        latest = session.scalars(select(Prediction).order_by(Prediction.id.desc())).first()
        assert latest.model_version == EARLIER
    listing = (await command(tg, ADMIN, "models"))[0].splitlines()
    assert listing[0].startswith(f"{SHIPPED_VERSION} retired")
    assert listing[1].startswith(f"{EARLIER} serving")

    assert (await command(tg, ADMIN, "rollback", SHIPPED_VERSION))[0] == (
        f"Now serving {SHIPPED_VERSION}."
    )
    assert serving_now(bot) == SHIPPED_VERSION
    assert "no model version 'nope'" in (await command(tg, ADMIN, "rollback", "nope"))[0]
    assert (await command(tg, ADMIN, "rollback"))[0].startswith("Usage: /rollback")
    assert serving_now(bot) == SHIPPED_VERSION


async def test_exclude_keeps_a_users_labels_out_of_retraining(tg, bot, sample_photos):
    await label(tg, sample_photos, 2)  # Alice's photo 1, Bob's photo 2
    with database(bot).session() as session:
        assert count_labelled_examples(session) == 2
    assert (await command(tg, ADMIN, "exclude", str(ALICE)))[0] == (
        f"User {ALICE}'s feedback is left out of future retraining."
    )
    with database(bot).session() as session:
        assert [e.user_id for e in labelled_examples(session)] == [BOB]
        assert count_labelled_examples(session) == 1
        assert session.scalar(select(Photo.user_id).where(Photo.id == 1)) == ALICE
    assert (await command(tg, ADMIN, "exclude", "7"))[0] == "I have nothing from user 7."
    assert (await command(tg, ADMIN, "exclude", "someone"))[0] == "Usage: /exclude USER_ID"


# oxford102-v6 to v8 (one head; real-world garden rows in the base) learn the new species from
# these users' photos too slowly for the growth gate: held-out top-1 50% with 30 tulips, 36% with
# 60, 55% with 90, although the candidate names 63% of 115 tulips it never saw after 24
# (docs/new-species.md; v5: promoted). Strict: the day it passes again, this marker must go.
@pytest.mark.xfail(strict=True, reason="oxford102-v6 to v8 do not learn tulips past the 60% gate")
async def test_users_teach_a_new_species_and_retraining_learns_it(tg, bot):
    """Three users record 30 real tulip photos as a new species (tulips are not among the 102),
    spelt three ways; 20 photos from 3 users approve it by themselves; the candidate of the
    next retraining names its held-out tulips."""
    tulips = sorted((SHARED / "data" / "flower_photos" / "tulips").glob("*.jpg"))[:30]
    users = (ALICE, BOB, ALICE + 100)
    for k, path in enumerate(tulips):
        typed = ("tulips", "Tulip", "tulp")[k % 3]
        await record_new_species(tg, users[k % 3], path.read_bytes(), typed)
    [listed] = await command(tg, ADMIN, "species")
    assert "Tulip: 30 photo(s) from 3 user(s) (approved)" in listed
    started, report = await command(tg, ADMIN, "retrain", n=2)
    assert "Retraining started" in started
    learnt = re.search(r"New species Tulip learnt by the candidate \(held-out top-1 (\d+)%", report)
    assert learnt and int(learnt.group(1)) >= 60, report
    with database(bot).session() as session:
        candidate = load_artifact(list_versions(session)[-1].path)
    assert candidate.class_names[-1] == "tulip" and len(candidate.class_names) == 103
    # The serving model is unchanged (6 held-out photos are too few to promote anything).
    assert svc(bot).identifier.classifier.class_names[-1] != "tulip"
