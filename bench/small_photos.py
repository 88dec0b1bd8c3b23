"""Small photos: how the answers degrade as a photo's short side shrinks (chooses min_photo_side).

    python bench/small_photos.py [--model models/oxford102] [--per-class 10]
        [--data ../shared/data/oxford102-224] [--flower-photos ../shared/data/flower_photos]
        [--per-species 60] [--nonflower ../shared/data/nonflower]

Each photo is shrunk with Pillow's Lanczos filter so that its short side is 96, 128, 160, 192 or
224 px and re-encoded as JPEG quality 90, as a phone or a Telegram thumbnail would send it, then
answered by `FlowerClassifier.answers` (model_training/classifier.py). A photo whose short side is
already below a size is never enlarged: it is left out of that row ("photos" counts what is left).

Three sets: a fixed-seed sample of Oxford test photos (224 px squares, so their 224 row is the
photo re-encoded), the Flickr flower_photos of the four species the model knows (240-500 px
originals; also answered as sent), and non-flower photos. The first three tables ignore the size
rule (the model's rules with min_photo_side=0), to show what the model itself says at each size;
the last applies the model's real rules, size rule included.
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
from model_training.cli import DEFAULT_MODEL_DIR
from model_training.data import UNLABELLED, read_split
from model_training.photos import decode_photo

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
    ignoring_size: Verdict
    real: Verdict


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
            outcomes.append(
                Outcome(
                    label=int(label),
                    top5=tuple(score.index for score in answer.top5),
                    ignoring_size=ignoring_size.verdict(
                        answer.top5[0].confidence, answer.flower_score, photo.short_side
                    ),
                    real=answer.verdict,
                )
            )
        progress.update(min(BATCH, len(photos) - start))
    return outcomes


def share(outcomes: Sequence[Outcome], verdict: Verdict, real: bool = False) -> float:
    if not outcomes:
        return float("nan")
    return float(np.mean([(o.real if real else o.ignoring_size) == verdict for o in outcomes]))


def top1(outcomes: Sequence[Outcome]) -> float:
    return float(np.mean([o.top5[0] == o.label for o in outcomes])) if outcomes else float("nan")


def top5(outcomes: Sequence[Outcome]) -> float:
    return float(np.mean([o.label in o.top5 for o in outcomes])) if outcomes else float("nan")


def size_name(size: int) -> str:
    return "as sent" if size == AS_SENT else f"{size} px"


def flower_table(title: str, results: dict[int, list[Outcome]]) -> str:
    lines = [
        f"**{title}** (size rule off)\n",
        "| short side | photos | top-1 | top-5 | sure | not sure | not a flower | top-1 of sure |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, outcomes in results.items():
        sure = [o for o in outcomes if o.ignoring_size == Verdict.SURE]
        lines.append(
            f"| {size_name(size)} | {len(outcomes)} | {top1(outcomes):.1%} | {top5(outcomes):.1%} "
            f"| {share(outcomes, Verdict.SURE):.1%} | {share(outcomes, Verdict.NOT_SURE):.1%} "
            f"| {share(outcomes, Verdict.NOT_A_FLOWER):.1%} | {top1(sure):.1%} |"
        )
    return "\n".join(lines)


def nonflower_table(results: dict[int, list[Outcome]]) -> str:
    lines = [
        "**Non-flower photos** (size rule off)\n",
        "| short side | photos | rejected (not a flower) | not sure | sure (a species named) |",
        "|---|---:|---:|---:|---:|",
    ]
    for size, outcomes in results.items():
        lines.append(
            f"| {size_name(size)} | {len(outcomes)} | {share(outcomes, Verdict.NOT_A_FLOWER):.1%} "
            f"| {share(outcomes, Verdict.NOT_SURE):.1%} | {share(outcomes, Verdict.SURE):.1%} |"
        )
    return "\n".join(lines)


def real_rules_table(rules: VerdictRules, sets: dict[str, dict[int, list[Outcome]]]) -> str:
    lines = [
        f"**Verdicts with the model's rules** (min_photo_side = {rules.min_photo_side} px)\n",
        "| photos | short side | n | too small | not a flower | not sure | sure |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, results in sets.items():
        for size, outcomes in results.items():
            cells = " | ".join(f"{share(outcomes, v, real=True):.1%}" for v in _REAL_ORDER)
            lines.append(f"| {name} | {size_name(size)} | {len(outcomes)} | {cells} |")
    return "\n".join(lines)


_REAL_ORDER = (Verdict.TOO_SMALL, Verdict.NOT_A_FLOWER, Verdict.NOT_SURE, Verdict.SURE)


def oxford_sample(data: Path, per_class: int) -> tuple[list[bytes], list[int]]:
    """A fixed-seed sample of per_class test photos of each class."""
    test = read_split(data, "test")
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


def nonflower_photos(folder: Path) -> tuple[list[bytes], list[int]]:
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as file:
        files = sorted(row["file"] for row in csv.DictReader(file))
    return [(folder / name).read_bytes() for name in files], [UNLABELLED] * len(files)


def short_side_spread(photos: Sequence[bytes]) -> str:
    sides = np.array([min(Image.open(io.BytesIO(data)).size) for data in photos])
    low, median = np.percentile(sides, [1, 50])
    return f"short side min {sides.min()}, 1% {low:.0f}, median {median:.0f}, max {sides.max()} px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/oxford102-224"))
    parser.add_argument("--per-class", type=int, default=10, help="Oxford test photos per class")
    parser.add_argument("--flower-photos", type=Path, default=Path("../shared/data/flower_photos"))
    parser.add_argument(
        "--per-species", type=int, default=60, help="flower_photos per known species"
    )
    parser.add_argument("--nonflower", type=Path, default=Path("../shared/data/nonflower"))
    args = parser.parse_args()

    started = time.perf_counter()
    classifier = FlowerClassifier.from_folder(args.model)
    inputs = {
        "Oxford test": (oxford_sample(args.data, args.per_class), SIZES),
        "flower_photos": (
            known_flower_photos(args.flower_photos, args.per_species),
            (*SIZES, AS_SENT),
        ),
        "non-flower": (nonflower_photos(args.nonflower), (*SIZES, AS_SENT)),
    }
    total = sum(len(photos) * len(sizes) for (photos, _), sizes in inputs.values())
    results: dict[str, dict[int, list[Outcome]]] = {}
    with tqdm(total=total, desc="answers", unit="photo") as progress:
        for name, ((photos, labels), sizes) in inputs.items():
            results[name] = {
                size: answer_all(classifier, photos, labels, size, progress) for size in sizes
            }

    print(f"model {classifier.version}; JPEG quality {JPEG_QUALITY}, Lanczos; seed {SEED}\n")
    for name, ((photos, _), _) in inputs.items():
        print(f"- {name}: {len(photos)} photos, {short_side_spread(photos)}")
    print()
    print(flower_table("Oxford test photos", results["Oxford test"]), end="\n\n")
    print(
        flower_table("flower_photos, the 4 known species (Flickr)", results["flower_photos"]),
        end="\n\n",
    )
    print(nonflower_table(results["non-flower"]), end="\n\n")
    print(real_rules_table(classifier.rules, results), end="\n\n")
    print(f"run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
