"""Small photos: how the answers degrade as a photo's short side shrinks (chooses min_photo_side).

    python bench/small_photos.py [--model DIR] [--data ../shared/data/oxford102-224]
        [--per-class 1] [--flower-photos ../shared/data/flower_photos] [--per-species 10]
        [--nonflower ../shared/data/nonflower] [--nonflower-count 24]
        [--sizes 96 128 160 192 224] [--min-photo-side PX]

The defaults make about 900 answers (each runs the backbone on four views): 4.5 CPU-minutes, 8.5
minutes on two shared CPU cores; `--per-class 10 --per-species 175 --nonflower-count 0` measures
more on a larger machine.

Each photo is shrunk with Pillow's Lanczos filter so that its short side is 96, 128, 160, 192 or
224 px and re-encoded as JPEG quality 90, as a phone or a Telegram thumbnail would send it, then
answered by `FlowerClassifier.answers` (model_training/classifier.py). A photo whose short side is
already below a size is never enlarged: it is left out of that row ("photos" counts what is left).

Three sets: a fixed-seed sample of Oxford's base held-out photos (test photos no product model
trains on, model_training/heldout.py; 224 px squares, so their 224 row is the photo re-encoded),
the Flickr flower_photos of the four species the model knows (originals with a long side of
240-500 px and a short side of 147-442 px, also answered as sent) and non-flower photos. The
first three tables ignore the size rule (the model's rules with min_photo_side=0, all the others
on), to show what the model itself says at each size; the last applies the model's real rules,
size rule included (and `--min-photo-side` adds one with a candidate value).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from model_training.abstention import Verdict, VerdictRules
from model_training.classifier import FlowerClassifier
from model_training.data import UNLABELLED, read_split
from model_training.defaults import DEFAULT_MODEL_DIR
from model_training.photos import decode_photo
from model_training.workflow import heldout_photos

SIZES = (96, 128, 160, 192, 224)
AS_SENT = 0  # the "size" of a photo left as it is
JPEG_QUALITY = 90
BATCH = 64
SEED = 0


@dataclass(frozen=True)
class Outcome:
    """What one answer says, under the rules without a size limit and under the real ones."""

    label: int  # the Oxford class; UNLABELLED for a non-flower
    top5: tuple[int, ...]
    confidence: float
    flower_score: float
    species_score: float
    short_side: int
    ignoring_size: Verdict
    real: Verdict  # the answer's own verdict, with the model's rules


def shrink(data: bytes, short_side: int) -> bytes | None:
    """Encoded photo -> JPEG with that short side; None when the photo is already smaller."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = image.size
    if min(width, height) < short_side:
        return None
    if width <= height:
        size = (short_side, max(short_side, round(height * short_side / width)))
    else:
        size = (max(short_side, round(width * short_side / height)), short_side)
    out = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def answer_all(
    classifier: FlowerClassifier,
    photos: Sequence[bytes],
    labels: Sequence[int],
    size: int,
    progress: tqdm,
) -> list[Outcome]:
    """Shrink (unless AS_SENT), decode and answer every photo, BATCH at a time."""
    ignoring_size: VerdictRules = dataclasses.replace(classifier.rules, min_photo_side=0)
    outcomes: list[Outcome] = []
    for start in range(0, len(photos), BATCH):
        batch, batch_labels = [], []
        for data, label in zip(
            photos[start : start + BATCH], labels[start : start + BATCH], strict=True
        ):
            sent = data if size == AS_SENT else shrink(data, size)
            if sent is not None:
                batch.append(decode_photo(sent))
                batch_labels.append(label)
        for photo, label, answer in zip(
            batch, batch_labels, classifier.answers(batch), strict=True
        ):
            confidence = answer.top5[0].confidence
            outcomes.append(
                Outcome(
                    label=int(label),
                    top5=tuple(score.index for score in answer.top5),
                    confidence=confidence,
                    flower_score=answer.flower_score,
                    species_score=answer.species_score,
                    short_side=photo.short_side,
                    ignoring_size=ignoring_size.verdict(
                        confidence, answer.flower_score, photo.short_side, answer.species_score
                    ),
                    real=answer.verdict,
                )
            )
        progress.update(min(BATCH, len(photos) - start))
    return outcomes


def _mean(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if flags else float("nan")


def share(outcomes: Sequence[Outcome], verdict: Verdict) -> float:
    """The share of outcomes with that verdict when the size rule is off."""
    return _mean([o.ignoring_size == verdict for o in outcomes])


def top1(outcomes: Sequence[Outcome]) -> float:
    return _mean([o.top5[0] == o.label for o in outcomes])


def top5(outcomes: Sequence[Outcome]) -> float:
    return _mean([o.label in o.top5 for o in outcomes])


def size_name(size: int) -> str:
    return "as sent" if size == AS_SENT else f"{size} px"


def flower_table(title: str, results: dict[int, list[Outcome]]) -> str:
    lines = [
        f"**{title}** (size rule off)\n",
        "| short side | photos | top-1 | top-5 | sure | not sure | unknown species | not a flower "
        "| top-1 of sure |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, outcomes in results.items():
        sure = [o for o in outcomes if o.ignoring_size == Verdict.SURE]
        lines.append(
            f"| {size_name(size)} | {len(outcomes)} | {top1(outcomes):.1%} | {top5(outcomes):.1%} "
            f"| {share(outcomes, Verdict.SURE):.1%} | {share(outcomes, Verdict.NOT_SURE):.1%} "
            f"| {share(outcomes, Verdict.UNKNOWN_SPECIES):.1%} "
            f"| {share(outcomes, Verdict.NOT_A_FLOWER):.1%} | {top1(sure):.1%} |"
        )
    return "\n".join(lines)


def nonflower_table(results: dict[int, list[Outcome]]) -> str:
    lines = [
        "**Non-flower photos** (size rule off)\n",
        "| short side | photos | rejected (not a flower) | not sure | unknown species "
        "| sure (a species named) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size, outcomes in results.items():
        lines.append(
            f"| {size_name(size)} | {len(outcomes)} | {share(outcomes, Verdict.NOT_A_FLOWER):.1%} "
            f"| {share(outcomes, Verdict.NOT_SURE):.1%} "
            f"| {share(outcomes, Verdict.UNKNOWN_SPECIES):.1%} "
            f"| {share(outcomes, Verdict.SURE):.1%} |"
        )
    return "\n".join(lines)


def real_rules_table(
    title: str, rules: VerdictRules | None, sets: dict[str, dict[int, list[Outcome]]]
) -> str:
    """Verdict shares with the size rule on: the answers' own verdicts (rules None) or rules'."""
    lines = [
        f"**{title}**\n",
        "| photos | short side | n | too small | not a flower | not sure | unknown species "
        "| sure |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, results in sets.items():
        for size, outcomes in results.items():
            verdicts = [
                o.real
                if rules is None
                else rules.verdict(o.confidence, o.flower_score, o.short_side, o.species_score)
                for o in outcomes
            ]
            cells = " | ".join(f"{_mean([x == v for x in verdicts]):.1%}" for v in _REAL_ORDER)
            lines.append(f"| {name} | {size_name(size)} | {len(outcomes)} | {cells} |")
    return "\n".join(lines)


_REAL_ORDER = (
    Verdict.TOO_SMALL,
    Verdict.NOT_A_FLOWER,
    Verdict.NOT_SURE,
    Verdict.UNKNOWN_SPECIES,
    Verdict.SURE,
)


def oxford_sample(data: Path, per_class: int) -> tuple[list[bytes], list[int]]:
    """A fixed-seed sample of per_class base held-out photos of each class."""
    test = heldout_photos(read_split(data, "test"))
    rng = np.random.default_rng(SEED)
    chosen: list[int] = []
    for k in range(len(test.class_names)):
        candidates = np.flatnonzero(test.labels == k)
        picked = rng.choice(candidates, min(per_class, len(candidates)), replace=False)
        chosen.extend(sorted(int(i) for i in picked))
    return [test.encoded[i] for i in chosen], [int(test.labels[i]) for i in chosen]


def known_flower_photos(folder: Path, per_species: int) -> tuple[list[bytes], list[int]]:
    """flower_photos of the species the model knows (tulips are not one), per_species of each."""
    by_class: dict[int, list[str]] = {}
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if int(row["oxford_class"]) != UNLABELLED:
                by_class.setdefault(int(row["oxford_class"]), []).append(row["file"])
    photos, labels = [], []
    for label, files in sorted(by_class.items()):
        # Evenly spaced over the sorted names: a fixed sample without a random generator.
        files = sorted(files)
        count = min(per_species, len(files))
        chosen = [files[i * len(files) // count] for i in range(count)]
        photos.extend((folder / name).read_bytes() for name in chosen)
        labels.extend([label] * len(chosen))
    return photos, labels


def nonflower_photos(folder: Path, count: int) -> tuple[list[bytes], list[int]]:
    """count non-flower photos evenly spaced over the sorted names (0: all)."""
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as file:
        files = sorted(row["file"] for row in csv.DictReader(file))
    if 0 < count < len(files):
        files = [files[i * len(files) // count] for i in range(count)]
    return [(folder / name).read_bytes() for name in files], [UNLABELLED] * len(files)


def short_side_spread(photos: Sequence[bytes]) -> str:
    sides = np.array([min(Image.open(io.BytesIO(data)).size) for data in photos])
    low, median = np.percentile(sides, [1, 50])
    return f"short side min {sides.min()}, 1% {low:.0f}, median {median:.0f}, max {sides.max()} px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/oxford102-224"))
    parser.add_argument("--per-class", type=int, default=1, help="Oxford held-out photos per class")
    parser.add_argument("--flower-photos", type=Path, default=Path("../shared/data/flower_photos"))
    parser.add_argument(
        "--per-species", type=int, default=10, help="flower_photos per known species"
    )
    parser.add_argument("--nonflower", type=Path, default=Path("../shared/data/nonflower"))
    parser.add_argument(
        "--nonflower-count", type=int, default=24, help="non-flower photos (0: all)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="short sides to shrink to (px)"
    )
    parser.add_argument(
        "--min-photo-side",
        type=int,
        help="also show the verdicts with this min_photo_side (a candidate to compare)",
    )
    args = parser.parse_args()
    sizes = tuple(sorted(args.sizes))

    started = time.perf_counter()
    classifier = FlowerClassifier.from_folder(args.model)
    rules = classifier.rules
    inputs = {
        "Oxford held-out": (oxford_sample(args.data, args.per_class), sizes),
        "flower_photos": (
            known_flower_photos(args.flower_photos, args.per_species),
            (*sizes, AS_SENT),
        ),
        "non-flower": (nonflower_photos(args.nonflower, args.nonflower_count), (*sizes, AS_SENT)),
    }
    total = sum(len(photos) * len(set_sizes) for (photos, _), set_sizes in inputs.values())
    results: dict[str, dict[int, list[Outcome]]] = {}
    with tqdm(total=total, desc="answers", unit="photo") as progress:
        for name, ((photos, labels), set_sizes) in inputs.items():
            results[name] = {
                size: answer_all(classifier, photos, labels, size, progress) for size in set_sizes
            }

    print(f"model {classifier.version}; JPEG quality {JPEG_QUALITY}, Lanczos; seed {SEED}\n")
    for name, ((photos, _), _) in inputs.items():
        print(f"- {name}: {len(photos)} photos, {short_side_spread(photos)}")
    print()
    print(flower_table("Oxford held-out photos", results["Oxford held-out"]), end="\n\n")
    print(
        flower_table("flower_photos, the 4 known species (Flickr)", results["flower_photos"]),
        end="\n\n",
    )
    print(nonflower_table(results["non-flower"]), end="\n\n")
    model_rules = f"Verdicts with the model's rules (min_photo_side = {rules.min_photo_side} px)"
    print(real_rules_table(model_rules, None, results), end="\n\n")
    if args.min_photo_side is not None:
        candidate = dataclasses.replace(rules, min_photo_side=args.min_photo_side)
        title = f"Verdicts with min_photo_side = {args.min_photo_side} px (a candidate)"
        print(real_rules_table(title, candidate, results), end="\n\n")
    print(f"run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
