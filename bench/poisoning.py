"""Poisoning among honest users: does one user labelling sunflowers "rose" change the answers?

    python bench/poisoning.py [--data ../shared/data] [--model DIR] [--users 40] [--poison 200]
        [--cases honest,poisoner,mixed,lone]

The retraining itself (model_training/retrain.py: rows, per-user cap, the check for users whose
labels everyone else contradicts, refit, gate), without the bot: labels are given straight as
rows, so each case takes one retraining. The real-world photos are flower_photos' four known
species, cut in halves as everywhere (model_training/realworld.py): users label the fitting half,
the measuring half is the probe.

Cases: `honest` (--users users share the fitting half, true labels), `poisoner` (one user labels
--poison sunflowers of that half "rose", repeated as needed), `mixed` (both), `lone` (one honest
user labels the whole half: the check must not mistake an honest user with nobody to agree with
for a poisoner). Prints who was left out, the gate's verdict and the probe's top-1, sunflowers'
top-1 and sunflowers answered "rose", for the serving model and the candidate.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np

from model_training.artifact import load_artifact, load_base_rows
from model_training.defaults import DEFAULT_CACHE_DIR, DEFAULT_MODEL_DIR
from model_training.features import FeatureCache
from model_training.model import head_probabilities
from model_training.realworld import read_realworld
from model_training.retrain import LabelledPhoto, contradicted_users, retrain, retrain_rows

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CAP = 5  # RETRAIN_MAX_PHOTOS_PER_USER's default
HONEST, POISONER = 1000, 666


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--poison", type=int, default=200)
    parser.add_argument("--cases", default="honest,poisoner,mixed,lone")
    args = parser.parse_args()

    serving, base = load_artifact(args.model), load_base_rows(args.model)
    views = tuple(serving.metadata.serve_views)
    photos = read_realworld(args.data)
    features = photos.features(views, FeatureCache(args.cache_dir, serving.metadata.scaling))
    known = photos.oxford_class >= 0
    labelling = np.flatnonzero(photos.fitting & known)
    probe = np.flatnonzero(~photos.fitting & known)
    rose = int(photos.oxford_class[photos.folders == "roses"][0])
    sunflower = int(photos.oxford_class[photos.folders == "sunflowers"][0])
    truth = photos.oxford_class[probe]
    sunflowers = truth == sunflower

    def honest(users: int) -> list[tuple[int, int, int]]:
        return [
            (HONEST + k % users, j, int(photos.oxford_class[j])) for k, j in enumerate(labelling)
        ]

    def poisoned() -> list[tuple[int, int, int]]:
        theirs = [j for j in labelling if photos.oxford_class[j] == sunflower]
        return [(POISONER, theirs[k % len(theirs)], rose) for k in range(args.poison)]

    cases = {
        "honest": lambda: honest(args.users),
        "poisoner": poisoned,
        "mixed": lambda: honest(args.users) + poisoned(),
        "lone": lambda: honest(1),
    }

    def probe_figures(head) -> str:
        answered = head_probabilities(head, features[probe]).argmax(axis=1)
        return (
            f"{(answered == truth).mean():.1%} | {(answered[sunflowers] == sunflower).mean():.1%}"
            f" | {(answered[sunflowers] == rose).mean():.1%}"
        )

    print(f"serving {serving.metadata.version}: probe | sunflowers | sunflowers as rose")
    print(f"before: {probe_figures(serving.head)}\n")
    print(
        "| case | labels | users left out | promoted (gate) | probe top-1 | sunflowers | "
        "sunflowers answered rose |"
    )
    print("|---|---:|---|---|---:|---:|---:|")
    for name in args.cases.split(","):
        labels = cases[name]()
        # Photos arrive in a mixed order, as from users labelling at the same time.
        order = np.random.default_rng(0).permutation(len(labels))
        labelled = [
            LabelledPhoto(photo_id, user, features[j], label)
            for photo_id, (user, j, label) in enumerate((labels[i] for i in order), start=1)
        ]
        rows = retrain_rows(base, iter(labelled), len(labelled), CAP)
        left_out = contradicted_users(rows)
        result = retrain(serving, base, rows, f"bench-{name}")
        verdict = "yes" if result.promote else f"no ({result.gate['reason']})"
        print(
            f"| {name} | {len(labelled)} | {left_out or 'none'} | {verdict} | "
            f"{probe_figures(result.candidate.head)} |"
        )


if __name__ == "__main__":
    main()
