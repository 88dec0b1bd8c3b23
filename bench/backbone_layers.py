"""Would the head do better on features pooled from more of the frozen backbone than its last layer?

    python bench/backbone_layers.py [--data ../shared/data] [--sets SETS] [--seeds 0,1]
                                    [--per-species N] [--limit N] [--epochs N]

The served head reads the global average of MobileNetV2's last layer (`out_relu`, 1280 values).
Earlier layers describe smaller parts (petal texture, edges) and may carry better across the move
from Oxford's close-ups to people's photos. For each feature set (layer names joined by "+", a
set ending in "/std" is standardised: every value scaled to unit variance over the training
rows, which a linear head folds into its weights), this fits the shipped recipe's head (its
epoch count, Adam with the weight average, real-world rows at the recipe's weight) on the product
rows: every Oxford photo but the base held-out set, and `garden_photos`' fit half. It prints
top-1 and top-5 on photos never fitted on: the base held-out set, `garden_photos`' measuring half
and `flower_photos`' measuring half (its four known species).

Features are the mean over the four serving views, computed here by one LiteRT backbone that pools
every layer asked for, in memory (a few minutes on every photo). Verdicts are not scored: the
honesty scores read the served features and would need fitting again on new ones.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np

from model_training.artifact import read_folder
from model_training.convert import to_tflite
from model_training.data import read_split
from model_training.defaults import SHIPPED_MODEL_DIR
from model_training.evaluate import top_k_accuracy
from model_training.features import lite_features
from model_training.heldout import heldout_ids
from model_training.lite import LiteBackbone
from model_training.model import INPUT_SIZE, SCALINGS, head_probabilities, imagenet_backbone
from model_training.realworld import read_garden, read_realworld
from model_training.train import RowRecipe, fit_rows

SERVED = "out_relu"
HEADER = (
    "| features | width | seed | base held-out top-1 | top-5 | garden top-1 | top-5 "
    "| flower_photos top-1 | top-5 |"
)
DEFAULT_SETS = (
    SERVED,
    f"{SERVED}/std",
    f"{SERVED}+block_13_expand_relu",
    f"{SERVED}+block_13_expand_relu/std",
)


@dataclass(frozen=True)
class Photos:
    encoded: list[bytes]
    labels: np.ndarray


def pooled_backbone(layers: list[str], scaling: str) -> LiteBackbone:
    """float32 views in 0..255 -> each layer's global average, side by side, through LiteRT."""
    backbone = imagenet_backbone()
    scale, offset = SCALINGS[scaling]
    views = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="views")
    inner = keras.Model(backbone.input, [backbone.get_layer(name).output for name in layers])
    maps = inner(keras.layers.Rescaling(scale, offset)(views), training=False)
    pooled = [keras.layers.GlobalAveragePooling2D()(m) for m in maps]
    out = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)
    return LiteBackbone(to_tflite(keras.Model(views, out)))


def first_per_class(labels: np.ndarray, keep: np.ndarray, n: int | None) -> np.ndarray:
    """Indices where `keep`, at most n per label (in file order)."""
    chosen = np.flatnonzero(keep)
    if n is None:
        return chosen
    taken: dict[int, int] = {}
    out = []
    for i in chosen:
        label = int(labels[i])
        if taken.get(label, 0) < n:
            taken[label] = taken.get(label, 0) + 1
            out.append(i)
    return np.array(out, dtype=np.int64)


def subset(encoded: list[bytes], labels: np.ndarray, rows: np.ndarray) -> Photos:
    return Photos([encoded[i] for i in rows], labels[rows])


def read_photos(
    data: Path, per_species: int | None, limit: int | None
) -> tuple[Photos, Photos, dict[str, Photos]]:
    """(Oxford training photos, garden fit half, the photos scored), as the product recipe cuts
    them; per_species / limit take the first few of each species (CI's small scale)."""
    held = heldout_ids()
    oxford_fit: list[Photos] = []
    heldout: list[Photos] = []
    for split in ("train", "val", "test"):
        photos = read_split(data / "oxford102-224", split)
        is_held = np.array([i in held for i in photos.ids])
        oxford_fit.append(
            subset(
                photos.encoded, photos.labels, first_per_class(photos.labels, ~is_held, per_species)
            )
        )
        heldout.append(
            subset(
                photos.encoded, photos.labels, first_per_class(photos.labels, is_held, per_species)
            )
        )
    garden = read_garden(data)
    flowers = read_realworld(data)
    measured = ~flowers.fitting & flowers.is_flower & (flowers.oxford_class >= 0)
    return (
        joined(oxford_fit),
        subset(
            garden.encoded,
            garden.oxford_class,
            first_per_class(garden.oxford_class, garden.fitting, limit),
        ),
        {
            "heldout": joined(heldout),
            "garden": subset(
                garden.encoded,
                garden.oxford_class,
                first_per_class(garden.oxford_class, ~garden.fitting, limit),
            ),
            "flowers": subset(
                flowers.encoded,
                flowers.oxford_class,
                first_per_class(flowers.oxford_class, measured, limit),
            ),
        },
    )


def joined(parts: list[Photos]) -> Photos:
    return Photos(
        [data for part in parts for data in part.encoded], np.concatenate([p.labels for p in parts])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--per-species", type=int, help="Oxford photos of each species per split")
    parser.add_argument("--limit", type=int, help="real-world photos of each species per half")
    parser.add_argument("--epochs", type=int, help="default: the shipped model's")
    args = parser.parse_args()

    shipped = read_folder(SHIPPED_MODEL_DIR)
    metadata = shipped.metadata
    recipe = RowRecipe.recorded(metadata.recipe, metadata.serve_views)
    epochs = args.epochs or int(metadata.recipe["epochs"])
    sets = args.sets.split(",")
    layers = list(dict.fromkeys(name for s in sets for name in s.removesuffix("/std").split("+")))

    backbone = pooled_backbone(layers, recipe.scaling)
    oxford, garden_fit, scored = read_photos(Path(args.data), args.per_species, args.limit)
    views = recipe.serve_views
    started = time.perf_counter()
    train_x = np.concatenate(
        [
            lite_features(backbone, oxford.encoded, views, "Oxford"),
            lite_features(backbone, garden_fit.encoded, views, "garden fit"),
        ]
    )
    n_train = len(oxford.labels) + len(garden_fit.labels)
    measured = {
        name: lite_features(backbone, photos.encoded, views, name)
        for name, photos in scored.items()
    }
    per_photo = (time.perf_counter() - started) / (n_train + sum(len(m) for m in measured.values()))
    train_y = np.concatenate([oxford.labels, garden_fit.labels])
    weights = np.concatenate(
        [np.ones(len(oxford.labels)), np.full(len(garden_fit.labels), recipe.realworld_weight)]
    ).astype(np.float32)

    offsets = layer_offsets(layers)
    sizes = ", ".join(f"{name} {len(m)}" for name, m in measured.items())
    print(
        f"\n{n_train} training photos, {epochs} epochs; scored: {sizes} photos; "
        f"{per_photo * 1000:.0f} ms a photo for the 4 views, every layer pooled "
        f"(load {os.getloadavg()[0]:.1f})\n"
    )
    print(HEADER)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for feature_set in sets:
        columns = np.concatenate(
            [offsets[name] for name in feature_set.removesuffix("/std").split("+")]
        )
        rows = train_x[..., columns].mean(axis=1)
        mean, scale = (
            (rows.mean(0), rows.std(0) + 1e-3) if feature_set.endswith("/std") else (0.0, 1.0)
        )
        results = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            head, _ = fit_rows(
                len(shipped.class_names),
                ((rows - mean) / scale, train_y, weights),
                recipe,
                epochs,
                seed,
            )
            scores = []
            for name, x in measured.items():
                labels = scored[name].labels
                p = head_probabilities(head, (x[..., columns] - mean) / scale)
                scores += [top_k_accuracy(p, labels, 1), top_k_accuracy(p, labels, 5)]
            results.append(scores)
            print(row(feature_set, len(columns), str(seed), scores), flush=True)
        print(row(f"**{feature_set}**", len(columns), "mean", list(np.mean(results, axis=0))))


def layer_offsets(layers: list[str]) -> dict[str, np.ndarray]:
    """Each layer's columns in the pooled backbone's output (its channels, in order)."""
    backbone = imagenet_backbone()
    offsets, start = {}, 0
    for name in layers:
        width = int(backbone.get_layer(name).output.shape[-1])
        offsets[name] = np.arange(start, start + width)
        start += width
    return offsets


def row(name: str, width: int, seed: str, scores: list[float]) -> str:
    return f"| {name} | {width} | {seed} | " + " | ".join(f"{s:.3f}" for s in scores) + " |"


if __name__ == "__main__":
    main()
