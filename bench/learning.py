"""Does the bot learn from its users? The learning experiment, end to end through the Bot API.

    python bench/learning.py [--data ../shared/data/flower_photos] [--users 40] [--seed 0]
                             [--fraction 0.5] [--poison 200] [--concurrency 8] [--model DIR]

The 700 flower_photos photos of the four species the model knows (daisy, dandelion, roses,
sunflowers; tulips are left out) are split in two halves, stratified by species, with a fixed
seed. The real bot (python-telegram-bot, the shipped model, SQLite) runs in this process against
the fake Bot API server (tests/fake_telegram), from a fresh temporary folder with no ../shared in
reach: it needs nothing but the shipped model folder and its database.

1. Labelling: `--users` users share the labelling half. Each sends a photo, waits for the answer
   and taps the right species when it is among the five offered, else "None of these", types the
   species' Oxford name and taps the confirmation. Users run concurrently, each one's photos in
   turn; at most `--concurrency` photos are in flight.
2. An admin sends /retrain and waits for the report.
3. The other half (the probe) is answered by the shipped model and by the version serving after
   the retraining (read from the registry in the database), each loaded with
   FlowerClassifier.from_folder: top-1 must rise by 10 points or more, the base held-out top-1
   (the registry row's metrics) fall by at most 1 point.
4. Poisoning, in a fresh database: one user sends `--poison` sunflower photos of the labelling
   half (repeated as needed) and labels each one "rose"; /retrain must not promote, and the probe
   half's sunflowers must be answered as before.

Prints markdown tables and wall times. Bot settings are the product's defaults (per-user cap,
registry folder, ...) except the photo rate limit, raised because simulated users send faster
than people.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Keras finds the public ImageNet backbone weights here (`make setup` puts them there).
os.environ.setdefault("KERAS_HOME", str(Path(__file__).resolve().parents[1] / ".cache" / "keras"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from fake_telegram import FakeTelegram, polling, reply_to, tap, type_a_name
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.i18n import display_name
from model_training.classifier import FlowerClassifier
from model_training.defaults import SHIPPED_MODEL_DIR
from model_training.photos import read_photo
from storage import Database, list_versions, serving_version

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:" + "A" * 35
ADMIN = 1001
POISONER = 666
POISON_SPECIES, POISON_LABEL = "sunflowers", "rose"
DEFAULT_DATA = Path(os.environ.get("FLOWERBOT_SHARED", ROOT.parent / "shared")) / "data"
STEP_TIMEOUT = 120.0  # one answer, tap or reply
RETRAIN_TIMEOUT = 900.0  # /retrain to its report


# -- the data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A flower_photos photo of a species the model knows."""

    path: Path
    folder: str  # daisy, dandelion, roses, sunflowers
    label: int  # the Oxford class index
    name: str  # the Oxford species name, as in classes.txt


def load_items(data: Path) -> list[Item]:
    """The photos of labels.csv whose species the model knows (oxford_class >= 0), in file order."""
    with (data / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        Item(data / row["file"], row["folder"], int(row["oxford_class"]), row["oxford_name"])
        for row in rows
        if int(row["oxford_class"]) >= 0
    ]


def split_halves(
    items: Sequence[Item], fraction: float, seed: int
) -> tuple[list[Item], list[Item]]:
    """(labelling, probe): `fraction` of each species, drawn with `seed`; the rest probes."""
    rng = np.random.default_rng(seed)
    labelling: list[Item] = []
    probe: list[Item] = []
    for folder in sorted({item.folder for item in items}):
        members = [item for item in items if item.folder == folder]
        order = rng.permutation(len(members))
        cut = round(fraction * len(members))
        labelling += [members[i] for i in order[:cut]]
        probe += [members[i] for i in order[cut:]]
    return labelling, probe


def per_species(items: Sequence[Item], n: int) -> list[Item]:
    """The first `n` items of each species (a smaller probe, still balanced)."""
    taken: Counter[str] = Counter()
    kept = []
    for item in items:
        if taken[item.folder] < n:
            taken[item.folder] += 1
            kept.append(item)
    return kept


def shares(items: Sequence[Item], users: int, seed: int) -> dict[int, list[Item]]:
    """Users 1..`users` get the items, shuffled (species mixed), dealt round-robin."""
    order = np.random.default_rng(seed + 1).permutation(len(items))
    dealt: dict[int, list[Item]] = {user: [] for user in range(1, users + 1)}
    for position, index in enumerate(order):
        dealt[position % users + 1].append(items[index])
    return dealt


# -- scoring with the model folders ------------------------------------------------------------


def probe_top1(folder: str | Path, items: Sequence[Item], batch: int = 32) -> np.ndarray:
    """The top-1 class index the model in `folder` answers for each photo."""
    classifier = FlowerClassifier.from_folder(folder)
    predicted: list[int] = []
    for start in range(0, len(items), batch):
        photos = [read_photo(item.path) for item in items[start : start + batch]]
        predicted += [answer.top5[0].index for answer in classifier.answers(photos)]
    return np.array(predicted, dtype=np.int64)


def check_names(items: Sequence[Item], folder: Path = SHIPPED_MODEL_DIR) -> list[str]:
    """The model's species names; each item's Oxford name must be its class's."""
    names = (folder / "classes.txt").read_text(encoding="utf-8").splitlines()
    if wrong := {(i.label, i.name) for i in items if names[i.label] != i.name}:
        raise ValueError(f"labels.csv disagrees with {folder}/classes.txt: {sorted(wrong)}")
    return names


def labels_of(items: Sequence[Item]) -> np.ndarray:
    return np.array([item.label for item in items], dtype=np.int64)


# -- the bot --------------------------------------------------------------------------------------


def bot_settings(tg: FakeTelegram, **overrides: Any) -> Settings:
    """The product settings, a SQLite file in the working directory and the fake Bot API.
    The photo rate limit is raised: simulated users send much faster than people."""
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "database_url": f"sqlite:///{Path.cwd() / 'flowerbot.sqlite'}",
        "admin_ids": str(ADMIN),
        "telegram_api_base_url": tg.base_url,
        "telegram_file_base_url": tg.base_file_url,
        "photos_per_minute": 100_000,
        "health_port": 0,  # several bots may run at once here; none needs a health check
    }
    return Settings(**{**values, **overrides})


@asynccontextmanager
async def running_bot(settings: Settings) -> Any:
    """The bot polling the fake server, as `flowerbot bot` runs it; stopped on the way out."""
    async with polling(build_application(settings)) as app:
        yield app


def serving_now(app: Application) -> str:
    """The version the running bot answers with."""
    return app.bot_data["services"].identifier.classifier.version


# -- simulated users ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labelled:
    offered: bool  # the right species was among the five buttons
    top1_right: bool  # the bot's first answer was the right species


class SimulationError(AssertionError):
    pass


async def label_photo(tg: FakeTelegram, user: int, data: bytes, species: str) -> Labelled:
    """Send a photo and give the right species (`species`: the Oxford name) as a user would: its
    button if offered, else "None of these", the typed name and the matching confirmation."""
    wanted = display_name(species)
    mark = tg.mark()
    tg.user_photo(user, data)
    answer = await reply_to(tg, user, mark, STEP_TIMEOUT)
    rows = tg.keyboard(answer)
    offered = [button["text"] for row in rows[:-1] for button in row]
    if not offered:
        raise SimulationError(f"user {user}: no feedback buttons under {answer['text']!r}")
    if wanted in offered:
        await tap(tg, answer, wanted, user, STEP_TIMEOUT)
        return Labelled(True, offered[0] == wanted)
    confirm = await type_a_name(tg, user, answer, species, STEP_TIMEOUT)
    choices = [button["text"] for row in tg.keyboard(confirm) for button in row]
    if wanted not in choices:
        raise SimulationError(f"user {user}: typed {species!r}, offered {choices}")
    await tap(tg, confirm, wanted, user, STEP_TIMEOUT)
    return Labelled(False, False)


@dataclass
class LabellingStats:
    photos: int = 0
    users: int = 0
    by_button: int = 0
    by_typed_name: int = 0
    shipped_top1_right: int = 0  # the bot's answers while users labelled
    seconds: float = 0.0
    per_species: Counter[str] = field(default_factory=Counter)


async def label_all(
    tg: FakeTelegram, dealt: dict[int, list[Item]], concurrency: int = 8
) -> LabellingStats:
    """Every user labels their photos (as `item.name`), one after the other; users run
    concurrently, with at most `concurrency` photos in flight. With 1 the users take turns
    whole, one after another: the photos' ids, and so which photos the gate holds out (a keyed
    hash of the id), are the same on every run; with several in flight they follow the bot's
    timing."""
    stats = LabellingStats(users=sum(1 for items in dealt.values() if items))
    in_flight = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one_user(user: int, items: list[Item]) -> None:
        for item in items:
            data = item.path.read_bytes()
            async with in_flight:
                done = await label_photo(tg, user, data, item.name)
            stats.photos += 1
            stats.by_button += done.offered
            stats.by_typed_name += not done.offered
            stats.shipped_top1_right += done.top1_right
            stats.per_species[item.folder] += 1

    if concurrency == 1:
        for user, items in dealt.items():
            await one_user(user, items)
    else:
        await asyncio.gather(*(one_user(user, items) for user, items in dealt.items()))
    stats.seconds = time.perf_counter() - started
    return stats


async def admin_retrain(tg: FakeTelegram) -> str:
    """/retrain as the admin; the report (plain text as shown), after "Retraining started"."""
    mark = tg.mark()
    tg.user_command(ADMIN, "retrain")
    started = await reply_to(tg, ADMIN, mark, STEP_TIMEOUT)
    if not started["text"].startswith("Retraining started"):
        raise SimulationError(f"/retrain answered {started['text']!r}")
    call = await tg.wait_for(
        "sendMessage",
        lambda c: c.result["message_id"] != started["message_id"],
        chat_id=ADMIN,
        after=mark,
        timeout=RETRAIN_TIMEOUT,
    )
    return call.result["text"]


@dataclass(frozen=True)
class Version:
    version: str
    path: str
    status: str
    metrics: dict[str, Any]


def registry(database_url: str) -> tuple[list[Version], str | None]:
    """Every model version in the database, oldest first, and the serving one's name."""
    database = Database(database_url)
    try:
        with database.session() as session:
            rows = [
                Version(r.version, r.path, str(r.status), dict(r.metrics))
                for r in list_versions(session)
            ]
            serving = serving_version(session)
            return rows, serving.version if serving else None
    finally:
        database.dispose()


# -- the two experiments --------------------------------------------------------------------------


@dataclass
class RetrainRun:
    """One bot session: users labelled, the admin retrained; what the registry says after."""

    labelling: LabellingStats
    report: str
    shipped: str  # the version serving before
    versions: list[Version]  # the registry after, oldest first
    serving: str | None  # the registry's serving version after
    bot_serving: str  # the version the running bot answered with after the report
    retrain_seconds: float

    @property
    def candidate(self) -> Version | None:
        """The retrained version (promoted or not)."""
        retrained = [v for v in self.versions if v.version != self.shipped]
        return retrained[-1] if retrained else None

    @property
    def promoted(self) -> bool:
        return self.candidate is not None and self.serving == self.candidate.version

    def folder(self, version: str | None) -> Path:
        """A version's model folder (registry paths are relative to the bot's folder)."""
        path = next(v.path for v in self.versions if v.version == version)
        return Path(path).resolve()

    def metric(self, when: str, key: str) -> float:
        assert self.candidate is not None
        return float(self.candidate.metrics[when][key])


async def labelled_and_retrained(
    dealt: dict[int, list[Item]], concurrency: int = 8, model_dir: Path = SHIPPED_MODEL_DIR
) -> RetrainRun:
    """Start the bot in the working directory (a fresh database there) on `model_dir`, let the
    users label, then /retrain. The working directory must be an empty folder of the caller's."""
    if any(Path.cwd().iterdir()):
        raise SimulationError(f"run in an empty folder, not {Path.cwd()}")
    with FakeTelegram(token=TOKEN) as tg:
        settings = bot_settings(tg, model_dir=model_dir)
        async with running_bot(settings) as app:
            shipped = serving_now(app)
            stats = await label_all(tg, dealt, concurrency)
            started = time.perf_counter()
            report = await admin_retrain(tg)
            retrain_seconds = time.perf_counter() - started
            bot_serving = serving_now(app)
        if tg.unknown_methods:
            raise SimulationError(f"the bot called unknown methods: {tg.unknown_methods}")
    versions, serving = registry(settings.database_url)
    return RetrainRun(stats, report, shipped, versions, serving, bot_serving, retrain_seconds)


def poison_share(labelling: Sequence[Item], n: int) -> dict[int, list[Item]]:
    """`n` sunflower photos of the labelling half (repeated as needed), all from one user, who
    labels each one "rose"."""
    sunflowers = [item for item in labelling if item.folder == POISON_SPECIES]
    rose = next(item for item in labelling if item.name == POISON_LABEL)
    poison = [
        replace(sunflowers[i % len(sunflowers)], label=rose.label, name=rose.name) for i in range(n)
    ]
    return {POISONER: poison}


@contextmanager
def working_directory(folder: Path) -> Iterator[Path]:
    previous = Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(previous)


# -- report -------------------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def points(x: float) -> str:
    return f"{100 * x:+.1f} pts"


def species_table(items: Sequence[Item], before: np.ndarray, after: np.ndarray) -> list[str]:
    truth = labels_of(items)
    lines = ["| species | probe photos | before | after |", "|---|---:|---:|---:|"]
    for folder in sorted({item.folder for item in items}):
        members = np.array([item.folder == folder for item in items])
        right_before = (before[members] == truth[members]).mean()
        right_after = (after[members] == truth[members]).mean()
        lines.append(f"| {folder} | {members.sum()} | {pct(right_before)} | {pct(right_after)} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "flower_photos")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.5, help="labelled share")
    parser.add_argument("--poison", type=int, default=200, help="0 skips the poisoning case")
    parser.add_argument("--concurrency", type=int, default=8, help="photos in flight")
    parser.add_argument(
        "--model", type=Path, default=SHIPPED_MODEL_DIR, help="the model folder the bot starts on"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    data = args.data.resolve()
    items = load_items(data)
    model = args.model.resolve()
    class_names = check_names(items, model)
    labelling, probe = split_halves(items, args.fraction, args.seed)
    dealt = shares(labelling, args.users, args.seed)
    truth = labels_of(probe)
    wall: list[tuple[str, float]] = []
    started_all = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="flowerbot-learning-") as tmp:
        root = Path(tmp)
        print(
            f"{len(items)} photos of known species from {data}: {len(labelling)} labelled by "
            f"{args.users} users, {len(probe)} probed (seed {args.seed}). Bot working folder "
            f"{root}; ../shared there: {(root.parent / 'shared').exists()}.\n"
        )
        t = time.perf_counter()
        before = probe_top1(model, probe)
        wall.append(("probe, shipped model", time.perf_counter() - t))

        t = time.perf_counter()
        with working_directory(root / "learning"):
            run = asyncio.run(labelled_and_retrained(dealt, args.concurrency, model))
            wall.append((f"bot: {run.labelling.photos} photos labelled", run.labelling.seconds))
            wall.append(("bot: /retrain to report", run.retrain_seconds))
            wall.append(("bot session in all", time.perf_counter() - t))
            t = time.perf_counter()
            after = probe_top1(run.folder(run.serving), probe)
            wall.append(("probe, serving model after", time.perf_counter() - t))

        poisoned: RetrainRun | None = None
        sunflowers = [item for item in probe if item.folder == POISON_SPECIES]
        if args.poison:
            t = time.perf_counter()
            poison_dealt = poison_share(labelling, args.poison)
            with working_directory(root / "poisoning"):
                poisoned = asyncio.run(
                    labelled_and_retrained(poison_dealt, args.concurrency, model)
                )
                wall.append(
                    (f"poisoning: {poisoned.labelling.photos} photos", poisoned.labelling.seconds)
                )
                wall.append(("poisoning: /retrain to report", poisoned.retrain_seconds))
                poison_after = probe_top1(poisoned.folder(poisoned.serving), sunflowers)
                candidate_after = (
                    probe_top1(poisoned.folder(poisoned.candidate.version), sunflowers)
                    if poisoned.candidate
                    else None
                )
            wall.append(("poisoning in all", time.perf_counter() - t))

    # -- the tables
    promoted = "yes" if run.promoted else "no"
    print("## Retraining report (as the admin sees it)\n")
    print(run.report + "\n")
    lab = run.labelling
    print(
        f"Labelling: {lab.photos} photos from {lab.users} users; the right species among the "
        f"five offered for {lab.by_button} ({pct(lab.by_button / lab.photos)}), typed after "
        f"'None of these' for {lab.by_typed_name}; the bot's top-1 right for "
        f"{lab.shipped_top1_right} ({pct(lab.shipped_top1_right / lab.photos)}).\n"
    )
    print("## Learning\n")
    print("| | before | after | change |\n|---|---:|---:|---:|")
    top1_before, top1_after = (before == truth).mean(), (after == truth).mean()
    print(
        f"| probe top-1 ({len(probe)} photos) | {pct(top1_before)} | {pct(top1_after)} | "
        f"{points(top1_after - top1_before)} |"
    )
    if run.candidate is not None:
        b, a = (run.metric(w, "base_heldout_top1") for w in ("before", "after"))
        print(f"| base held-out top-1 | {pct(b)} | {pct(a)} | {points(a - b)} |")
        fb, fa = (run.metric(w, "feedback_top1") for w in ("before", "after"))
        n_held = run.candidate.metrics["after"]["feedback_holdout"]
        print(
            f"| held-out feedback top-1 ({n_held} photos) | {pct(fb)} | {pct(fa)} | "
            f"{points(fa - fb)} |"
        )
        gate = run.candidate.metrics["gate"]
        print(
            f"| promoted | {run.shipped} | {run.candidate.version} | {promoted}: "
            f"McNemar p = {gate['p_value']:.3g} ({gate['gained']} gained, {gate['lost']} lost) |"
        )
    else:
        print(f"| promoted | {run.shipped} | (no candidate recorded) | no |")
    print(f"| serving after (registry / running bot) | | {run.serving} / {run.bot_serving} | |")
    if poisoned is not None:
        sun_truth = labels_of(sunflowers)
        sun_before = before[[i for i, item in enumerate(probe) if item.folder == POISON_SPECIES]]
        s_b, s_a = (sun_before == sun_truth).mean(), (poison_after == sun_truth).mean()
        changed = int((sun_before != poison_after).sum())
        p_promoted = "yes" if poisoned.promoted else "no"
        print(
            f"| poisoning: probe sunflowers top-1 ({len(sunflowers)} photos) | {pct(s_b)} | "
            f"{pct(s_a)} | {points(s_a - s_b)}, {changed} answers changed |"
        )
        reason = poisoned.candidate.metrics["gate"]["reason"] if poisoned.candidate else "-"
        print(
            f"| poisoning: promoted | {poisoned.shipped} | {poisoned.serving} | {p_promoted} "
            f"({reason}) |"
        )
        if candidate_after is not None:
            s_c = (candidate_after == sun_truth).mean()
            rose = (candidate_after == class_names.index(POISON_LABEL)).mean()
            print(
                f"| poisoning: the rejected candidate on probe sunflowers | {pct(s_b)} | "
                f"{pct(s_c)} | {points(s_c - s_b)}; answered rose: {pct(rose)} |"
            )
    goals = [
        ("the candidate is promoted", "yes" if run.promoted else "no", run.promoted),
        (
            "probe top-1 rises by >= 10 points",
            points(top1_after - top1_before),
            top1_after - top1_before >= 0.10,
        ),
    ]
    if run.candidate is not None:
        drop = run.metric("before", "base_heldout_top1") - run.metric("after", "base_heldout_top1")
        goals.append(
            ("base held-out top-1 drops by <= 1.0 point", points(-drop), drop <= 0.01 + 1e-9)
        )
    if poisoned is not None:
        goals.append(
            (
                "poisoning: not promoted, serving unchanged",
                f"promoted: {'yes' if poisoned.promoted else 'no'}, serving {poisoned.serving}",
                not poisoned.promoted and poisoned.serving == poisoned.shipped,
            )
        )
        goals.append(
            ("poisoning: probe sunflower answers unchanged", f"{changed} changed", not changed)
        )
    print("\n## Goals\n")
    print("| goal | measured | met |\n|---|---|---|")
    for goal, measured, met in goals:
        print(f"| {goal} | {measured} | {'yes' if met else 'NO'} |")
    print("\n## Probe top-1 per species\n")
    print("\n".join(species_table(probe, before, after)))
    if poisoned is not None:
        print("\n## Poisoning report (as the admin sees it)\n")
        print(poisoned.report)
    print("\n## Wall times\n")
    print("| step | seconds |\n|---|---:|")
    for step, seconds in [*wall, ("everything", time.perf_counter() - started_all)]:
        print(f"| {step} | {seconds:.1f} |")
    return 0 if all(met for _, _, met in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
