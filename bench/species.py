"""Can users teach the bot a species it does not know? The new-species experiment, end to end.

    python bench/species.py [--data ../shared/data/flower_photos] [--users 5] [--fraction 0.5]
                            [--seed 0] [--model DIR]

Tulips are not among the shipped model's 102 species. Their flower_photos photos are split in two
halves with a fixed seed. The real bot runs against the fake Bot API (as in bench/learning.py):

1. `--users` users share the teaching half: each sends a photo, taps "None of these", types
   "tulip" and taps "Record “Tulip” as a new species".
2. The admin sends `/addspecies tulip` (automatic approval may have come first) and `/retrain`.
3. The other half (the probe) is answered by the retraining's candidate (the newest model folder
   in the registry, promoted or not: the gate needs 20 held-out feedback photos from 4 users to
   promote anything, and 5 users' held-out tulips may be fewer) and by the shipped model.

Prints the tables: teaching, the retraining's report, the probe's top-1 "tulip" and the verdicts,
and the base held-out top-1 before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from fake_telegram import FakeTelegram, record_new_species, reply_to
from learning import (
    ADMIN,
    DEFAULT_DATA,
    STEP_TIMEOUT,
    TOKEN,
    admin_retrain,
    bot_settings,
    registry,
    running_bot,
    working_directory,
)

from model_training.classifier import FlowerClassifier
from model_training.defaults import SHIPPED_MODEL_DIR
from model_training.photos import read_photo

NAME = "tulip"


def tulip_photos(data: Path) -> list[Path]:
    with (data / "labels.csv").open(newline="") as f:
        return [data / row["file"] for row in csv.DictReader(f) if row["folder"] == "tulips"]


async def teach_all(tg: FakeTelegram, user: int, photos: list[Path]) -> None:
    for photo in photos:
        await record_new_species(tg, user, photo.read_bytes(), NAME, STEP_TIMEOUT)


def answers(folder: str | Path, photos: list[Path]) -> list[tuple[str, str]]:
    """(top-1 species, verdict) per photo from the model in `folder`."""
    classifier = FlowerClassifier.from_folder(folder)
    found = []
    for start in range(0, len(photos), 32):
        batch = [read_photo(path) for path in photos[start : start + 32]]
        found += [(a.top5[0].species, a.verdict.value) for a in classifier.answers(batch)]
    return found


async def experiment(args: argparse.Namespace) -> int:
    photos = sorted(tulip_photos(args.data))
    order = np.random.default_rng(args.seed).permutation(len(photos))
    cut = round(args.fraction * len(photos))
    teaching, probe = [photos[i] for i in order[:cut]], [photos[i] for i in order[cut:]]
    with tempfile.TemporaryDirectory() as folder, working_directory(Path(folder)):
        with FakeTelegram(token=TOKEN) as tg:
            settings = bot_settings(tg, model_dir=args.model)
            async with running_bot(settings):
                started = time.perf_counter()
                # Users teach at the same time, each their share of photos in turn.
                await asyncio.gather(
                    *(
                        teach_all(tg, user, teaching[user - 1 :: args.users])
                        for user in range(1, args.users + 1)
                    )
                )
                taught = time.perf_counter() - started
                mark = tg.mark()
                tg.user_command(ADMIN, "addspecies", NAME)
                approved = (await reply_to(tg, ADMIN, mark, STEP_TIMEOUT))["text"]
                report = await admin_retrain(tg)
            versions, serving = registry(settings.database_url)
        candidate = versions[-1]
        shipped = answers(args.model, probe)
        learnt = answers(candidate.path, probe)

    def share(found: list[tuple[str, str]], top1: str | None = None) -> str:
        hits = sum(1 for species, _ in found if top1 is None or species == top1)
        return f"{hits / len(found):.1%}"

    print(f"Taught {len(teaching)} tulip photos by {args.users} users in {taught:.0f} s.")
    print(f"/addspecies: {approved}")
    print("\nThe retraining's report:\n")
    print(report)
    print(f"\nCandidate {candidate.version}: {candidate.status} (serving: {serving})\n")
    print("| probe (other half of the tulips) | photos | top-1 'tulip' | verdicts |")
    print("|---|---:|---:|---|")
    for label, found in (("shipped model", shipped), ("after retraining", learnt)):
        verdicts = ", ".join(f"{v} {n}" for v, n in Counter(v for _, v in found).most_common())
        print(f"| {label} | {len(found)} | {share(found, NAME)} | {verdicts} |")
    before = candidate.metrics["before"]["base_heldout_top1"]
    after = candidate.metrics["after"]["base_heldout_top1"]
    print(
        f"\nBase held-out top-1: {before:.1%} -> {after:.1%} ({100 * (after - before):+.1f} points)"
    )
    ok = sum(s == NAME for s, _ in learnt) / len(learnt) >= 0.7 and before - after <= 0.01
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "flower_photos")
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    return asyncio.run(experiment(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
