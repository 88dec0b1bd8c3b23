"""What an identifier's hour buys: B identifications chosen at random, or least sure first.

    python bench/active_learning.py [--data ../shared/data] [--model DIR] [--budgets 50,100,200]
        [--labellers 40] [--seeds 0] [--limit N]

The pool is flower_photos' fitting half, the four species the model knows (model_training/
realworld.py; tulips are no Oxford species). An identifier names B of its photos (their true
species), chosen (a) at random (`--seeds`: one draw each) or (b) least sure first: the lowest
top-1 confidence of the serving model's answer, the order the identifiers' queue would hand
them out in if users asked about photos at random. Each set of labels is retrained through the
real path without the bot (model_training/retrain.py: rows, held-out fifth, per-user cap,
contradicted users, refit, gate), as bench/poisoning.py does; the confirmed labels are credited
round-robin to `--labellers` identifiers (the per-user cap applies to each).

Prints, for the serving model and each candidate: the probe top-1 (flower_photos' measuring
half, known species), sure-and-right and sure-and-wrong on the measuring halves of flower_photos'
known species and garden_photos, the base held-out top-1 and the gate's verdict. `--limit`
keeps at most N measuring photos per folder (a quick run: CI).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np

from model_training.abstention import Verdict
from model_training.artifact import ModelArtifact, load_artifact, load_base_rows
from model_training.classifier import FlowerClassifier
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache
from model_training.model import head_probabilities
from model_training.realworld import UNKNOWN_CLASS, RealWorld, read_garden, read_realworld
from model_training.retrain import LabelledPhoto, retrain, retrain_rows

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CAP = 5  # RETRAIN_MAX_PHOTOS_PER_USER's default
FIRST_IDENTIFIER = 2000


@dataclass(frozen=True)
class Measured:
    """A measuring half's known-species photos: their features and true species."""

    name: str
    features: np.ndarray
    truth: np.ndarray


def measuring(photos: RealWorld, views: tuple[str, ...], cache: FeatureCache, limit: int | None):
    half = photos.measuring_half(limit)
    known = half.subset(half.oxford_class != UNKNOWN_CLASS)
    return known.features(views, cache), known.oxford_class


def figures(model: ModelArtifact, sets: list[Measured]) -> list[str]:
    """Probe top-1 (the first set), then sure-and-right and sure-and-wrong of every set."""
    classifier = FlowerClassifier(model)
    cells = []
    for position, measured in enumerate(sets):
        p = head_probabilities(model.head, measured.features)
        flower, species = classifier.honesty_scores(measured.features, p.max(axis=1))
        sure = np.array(
            [
                classifier.rules.verdict(float(c), float(f), 10**6, float(s)) == Verdict.SURE
                for c, f, s in zip(p.max(axis=1), flower, species, strict=True)
            ]
        )
        right = p.argmax(axis=1) == measured.truth
        if position == 0:
            cells.append(f"{right.mean():.1%}")
        cells += [f"{(sure & right).mean():.1%}", f"{(sure & ~right).mean():.1%}"]
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--budgets", default="50,100,200")
    parser.add_argument("--labellers", type=int, default=40)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    started = time.perf_counter()

    serving, base = load_artifact(args.model), load_base_rows(args.model)
    views = tuple(serving.metadata.serve_views)
    cache = FeatureCache(args.cache_dir, serving.metadata.scaling)
    photos = read_realworld(args.data)
    pool = photos.fitting_half()
    pool = pool.subset(pool.oxford_class != UNKNOWN_CLASS)
    pool_features = pool.features(views, cache)
    sets = [
        Measured("flower_photos", *measuring(photos, views, cache, args.limit)),
        Measured("garden_photos", *measuring(read_garden(args.data), views, cache, args.limit)),
    ]
    confidence = head_probabilities(serving.head, pool_features).max(axis=1)
    orders = {
        f"random (seed {seed})": np.random.default_rng(int(seed)).permutation(len(pool.files))
        for seed in args.seeds.split(",")
    }
    orders["least sure first"] = np.argsort(confidence, kind="stable")

    print(
        f"serving {serving.metadata.version}; pool: {len(pool.files)} fitting photos of known "
        f"species; labels credited to {args.labellers} identifiers (cap {CAP} photos each)\n"
    )
    heads = " | ".join(f"{s.name} sure and right | {s.name} sure and wrong" for s in sets)
    print(f"| order | B | probe top-1 | {heads} | base held-out top-1 | promoted |")
    print("|---|---:|---:|" + "---:|" * (2 * len(sets)) + "---:|---|")
    base_answers = head_probabilities(serving.head, base.heldout_x.astype(np.float32))
    base_top1 = (base_answers.argmax(axis=1) == base.heldout_y).mean()
    print(f"| serving | 0 | {' | '.join(figures(serving, sets))} | {base_top1:.1%} | |")
    for budget in (int(b) for b in args.budgets.split(",")):
        for name, order in orders.items():
            chosen = order[:budget]
            labelled = [
                LabelledPhoto(
                    photo_id,
                    FIRST_IDENTIFIER + k % args.labellers,
                    pool_features[j],
                    int(pool.oxford_class[j]),
                )
                for k, (photo_id, j) in enumerate(zip(range(1, budget + 1), chosen, strict=True))
            ]
            rows = retrain_rows(base, iter(labelled), len(labelled), CAP)
            result = retrain(serving, base, rows, f"bench-{budget}")
            verdict = "yes" if result.promote else f"no ({result.gate['reason']})"
            base_after = f"{result.after['base_heldout_top1']:.1%}"
            cells = " | ".join(figures(result.candidate, sets))
            print(f"| {name} | {budget} | {cells} | {base_after} | {verdict} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
