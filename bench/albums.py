"""Albums: how much do 2 or 3 photos of one plant help, and which combining rule to use.

    python bench/albums.py [--data ../shared/data/oxford102-224] [--model DIR]
        [--groups-per-species 20] [--crop-photos-per-species 2] [--seed 0]
        [--latency-rounds 5] [--album-wait 1.0]

1. **The rule, chosen on val.** The shipped head trained on val (it is refitted on everything),
   so a head is fitted with the same recipe and epoch count on the same rows minus val; val
   photos of one species are drawn in groups of 1, 2 and 3 and each rule's top-1 is compared
   (model_training/albums.py keeps the winner).
2. **The shipped model on the base held-out photos** (never trained on): groups of 1, 2 and 3
   photos of one species, both rules. Photos of one species by different photographers are
   kinder than photos of one plant, so this is the best case.
3. **The worst case: two crops of one photo.** Each held-out photo is cut into two overlapping
   crops (the left and the right 70%, as one would frame a flower twice from the same spot),
   each answered as a photo through `FlowerClassifier.answers`, then combined as an album.

4. **Latency**: the real bot against the fake Bot API (bench/bot_load.py's harness): from the
   album's last photo reaching the server to the answer, beside three photos sent alone (each
   answered by itself) in the same run. Most of an album's latency is ALBUM_WAIT_SECONDS, the
   quiet time that tells the album is complete.

Features come from the feature cache (FEATURE_CACHE_DIR), so only parts 3 and 4 run the backbone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from bot_load import bot_on_fake_telegram  # bench/ is on sys.path when a bench script runs
from PIL import Image

from model_training.albums import CHOSEN, Combine, album_answer, combine
from model_training.classifier import FlowerClassifier
from model_training.data import PhotoSet, read_split
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache, split_features
from model_training.heldout import heldout_ids
from model_training.model import head_probabilities
from model_training.photos import decode_photo
from model_training.train import RowRecipe, fit_rows
from model_training.workflow import mean_rows

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "oxford102-224"
SAMPLES = ROOT.parent / "shared" / "samples" / "photos"
GROUP_SIZES = (1, 2, 3)
CROP_SIDE = 0.7  # of the photo's width; full height


def grouped_top1(
    probabilities: np.ndarray, labels: np.ndarray, size: int, per_species: int, seed: int
) -> dict[Combine, float]:
    """Top-1 of each rule on groups of `size` distinct photos of one species, `per_species`
    groups for each species (the same groups for every rule)."""
    rng = np.random.default_rng(seed)
    groups, truth = [], []
    for species in np.unique(labels):
        photos = np.flatnonzero(labels == species)
        for _ in range(per_species):
            groups.append(rng.choice(photos, size, replace=False))
            truth.append(species)
    stacked = probabilities[np.array(groups)]  # (groups, size, classes)
    return {
        rule: float((combine(stacked, rule).argmax(axis=1) == np.array(truth)).mean())
        for rule in Combine
    }


def print_table(title: str, rows: dict[int, dict[Combine, float]]) -> None:
    print(f"\n{title}")
    print("| photos | " + " | ".join(f"top-1, {rule.value}" for rule in Combine) + " |")
    print("|---:|" + "---:|" * len(Combine))
    for size, scores in rows.items():
        print(f"| {size} | " + " | ".join(f"{scores[rule]:.1%}" for rule in Combine) + " |")


def val_head_probabilities(
    data: Path, classifier: FlowerClassifier, cache: FeatureCache
) -> tuple[np.ndarray, np.ndarray, PhotoSet, np.ndarray]:
    """Val probabilities from the shipped recipe fitted without val (and without held-out)."""
    metadata = classifier.artifact.metadata
    views = tuple(metadata.serve_views)
    recipe = RowRecipe()
    splits = {s: read_split(data, s) for s in ("train", "val", "test")}
    features = {s: split_features(p, views, cache, s) for s, p in splits.items()}
    held = np.isin(splits["test"].ids, list(heldout_ids()))
    fit_x = mean_rows(np.concatenate([features["train"], features["test"][~held]]))
    fit_y = np.concatenate([splits["train"].labels, splits["test"].labels[~held]])
    head, _ = fit_rows(
        len(classifier.class_names), (fit_x, fit_y, None), recipe, int(metadata.recipe["epochs"])
    )
    return head_probabilities(head, features["val"]), splits["val"].labels, splits["test"], held


def crop_pairs(encoded: list[bytes]) -> list[bytes]:
    """Each photo -> its left and right CROP_SIDE crops, JPEG-encoded (two photos each)."""
    crops = []
    for data in encoded:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        width, height = image.size
        side = round(width * CROP_SIDE)
        for left in (0, width - side):
            out = io.BytesIO()
            image.crop((left, 0, left + side, height)).save(out, "JPEG", quality=92)
            crops.append(out.getvalue())
    return crops


async def latencies(model: Path, photos: list[bytes], rounds: int, wait: float) -> dict:
    """Seconds from the last photo's update to the answer: albums of len(photos), and the same
    photos sent alone (the last one's answer), alternating, `rounds` times each."""
    limit = 10 * rounds * len(photos)
    times: dict[str, list[float]] = {"album": [], "alone": []}
    running = bot_on_fake_telegram(model, photos_per_minute=limit, album_wait_seconds=wait)
    async with running as (tg, _):
        for _ in range(rounds):
            mark = tg.mark()
            tg.user_album(1, photos)
            sent = time.monotonic()
            reply = await tg.wait_for("sendMessage", chat_id=1, after=mark, timeout=120)
            times["album"].append(reply.time - sent)
            mark = tg.mark()
            for data in photos:
                tg.user_photo(1, data)
            sent = time.monotonic()
            while sum(c.method == "sendMessage" for c in tg.calls()[mark:]) < len(photos):
                await asyncio.sleep(0.01)
            last = [c for c in tg.calls()[mark:] if c.method == "sendMessage"][-1]
            times["alone"].append(last.time - sent)
    return {way: float(np.median(seconds)) for way, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--groups-per-species", type=int, default=20)
    parser.add_argument("--crop-photos-per-species", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--album-wait", type=float, default=1.0, help="ALBUM_WAIT_SECONDS")
    args = parser.parse_args()

    classifier = FlowerClassifier.from_folder(args.model)
    cache = FeatureCache(args.cache_dir, classifier.artifact.metadata.scaling)
    val_probs, val_labels, test, held = val_head_probabilities(args.data, classifier, cache)
    per = args.groups_per_species
    on_val = {k: grouped_top1(val_probs, val_labels, k, per, args.seed) for k in GROUP_SIZES}
    print_table("Val, a head that never saw val: top-1 by album size and rule", on_val)
    best = max(Combine, key=lambda rule: sum(on_val[k][rule] for k in GROUP_SIZES[1:]))
    print(f"\nBest on val: {best.value}; model_training/albums.py uses {CHOSEN.value}.")

    views = tuple(classifier.artifact.metadata.serve_views)
    heldout_x = split_features(test, views, cache, "test")[held]
    heldout_y = test.labels[held]
    probs = head_probabilities(classifier.artifact.head, heldout_x)
    on_heldout = {k: grouped_top1(probs, heldout_y, k, per, args.seed) for k in GROUP_SIZES}
    print_table(
        f"Base held-out ({len(heldout_y)} photos), the shipped model "
        f"{classifier.version}: photos of one species by different photographers",
        on_heldout,
    )

    rng = np.random.default_rng(args.seed)
    chosen = np.concatenate(
        [
            rng.choice(np.flatnonzero(heldout_y == s), args.crop_photos_per_species, replace=False)
            for s in np.unique(heldout_y)
        ]
    )
    photos = [test.encoded[i] for i in np.flatnonzero(held)[chosen]]
    answers = classifier.answers([decode_photo(c) for c in crop_pairs(photos)])
    truth = heldout_y[chosen]
    single = np.mean([a.top5[0].index == y for a, y in zip(answers[::2], truth, strict=True)])
    pairs = [album_answer(classifier, answers[i : i + 2]) for i in range(0, len(answers), 2)]
    paired = np.mean([p.top5[0].index == y for p, y in zip(pairs, truth, strict=True)])
    whole = np.mean(probs[chosen].argmax(axis=1) == truth)
    print(f"\nWorst case, two crops of one photo ({len(photos)} held-out photos, {CHOSEN.value}):")
    print("| answer from | top-1 |\n|---|---:|")
    print(f"| the whole photo | {whole:.1%} |")
    print(f"| one crop (the left {CROP_SIDE:.0%}) | {single:.1%} |")
    print(f"| both crops as an album | {paired:.1%} |")

    if args.latency_rounds:
        three = [p.read_bytes() for p in sorted(SAMPLES.glob("*.jpg"))[:3]]
        median = asyncio.run(latencies(args.model, three, args.latency_rounds, args.album_wait))
        print(f"\nLatency, median of {args.latency_rounds} (ALBUM_WAIT_SECONDS {args.album_wait}):")
        print("| sent | from the last photo to its answer (s) |\n|---|---:|")
        print(f"| an album of 3 photos | {median['album']:.2f} |")
        print(f"| the same 3 photos alone | {median['alone']:.2f} |")


if __name__ == "__main__":
    main()
