"""Real-world photos next to the Oxford data: `flower_photos` (Flickr flowers, four known species
and tulips, which Oxford 102 lacks), `nonflower` (ordinary photos of anything else),
`garden_photos` (Flickr photos of eight known species, with fixed fit and measure halves) and
`unknown_photos` (astilbe, a species outside the 102, with fixed halves).

Both are read from `<data>/flower_photos` and `<data>/nonflower` (each with a labels.csv). Each
folder is cut once into a fitting half and a measuring half by a seeded draw over the sorted file
names, per folder, so the flower/non-flower model is fitted on one half and every figure is
measured on the other; training, the benchmarks and the tests all call `split_half`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_training.data import content_hash
from model_training.features import FeatureCache, cached_features

FLOWER_PHOTOS = "flower_photos"
NONFLOWER = "nonflower"
GARDEN_PHOTOS = "garden_photos"
UNKNOWN_PHOTOS = "unknown_photos"
SPLIT_SEED = 13
NONFLOWER_FOLDER = "nonflower"  # the "folder" of every nonflower photo
UNKNOWN_CLASS = -1  # tulips, astilbe: no Oxford species


@dataclass(frozen=True)
class RealWorld:
    files: list[str]  # relative to the data set's folder
    folders: np.ndarray  # flower_photos' folder name, or "nonflower"
    oxford_class: np.ndarray  # Oxford class index, UNKNOWN_CLASS for tulips and non-flowers
    is_flower: np.ndarray  # bool
    fitting: np.ndarray  # bool: in the fitting half (else the measuring half)
    encoded: list[bytes]

    @property
    def keys(self) -> list[str]:
        return [content_hash(data) for data in self.encoded]

    def features(self, views: tuple[str, ...], cache: FeatureCache) -> np.ndarray:
        """(photos, views, 1280), running the backbone only for what the cache lacks."""
        return cached_features(self.encoded, self.keys, views, cache, desc="real-world features")

    def fitting_half(self) -> RealWorld:
        """Only the fitting half's photos: all that training reads (the other half is measured)."""
        return self.subset(self.fitting)

    def measuring_half(self, limit: int | None = None) -> RealWorld:
        """Only the measuring half's photos; at most `limit` a folder (its first): a quick run."""
        return self.half(fitting=False, limit=limit)

    def half(self, fitting: bool, limit: int | None = None) -> RealWorld:
        """The fitting or the measuring half; at most `limit` photos a folder (its first)."""
        keep = self.fitting.copy() if fitting else ~self.fitting
        if limit is not None:
            for folder in np.unique(self.folders):
                keep[np.flatnonzero(keep & (self.folders == folder))[limit:]] = False
        return self.subset(keep)

    def subset(self, keep: np.ndarray) -> RealWorld:
        """The photos where the boolean mask `keep` is true, in order."""
        rows = np.flatnonzero(keep)
        return RealWorld(
            files=[self.files[i] for i in rows],
            folders=self.folders[rows],
            oxford_class=self.oxford_class[rows],
            is_flower=self.is_flower[rows],
            fitting=self.fitting[rows],
            encoded=[self.encoded[i] for i in rows],
        )


def split_half(files: list[str], folders: list[str], seed: int = SPLIT_SEED) -> np.ndarray:
    """True for the fitting half: per folder, half of the sorted names drawn with a fixed seed."""
    fitting = np.zeros(len(files), dtype=bool)
    rng = np.random.default_rng(seed)
    for folder in sorted(set(folders)):
        members = sorted((f, i) for i, f in enumerate(files) if folders[i] == folder)
        order = rng.permutation(len(members))
        for j in order[: len(members) // 2]:
            fitting[members[j][1]] = True
    return fitting


def read_realworld(data: str | Path) -> RealWorld:
    """flower_photos and nonflower under `data` (e.g. ../shared/data), in labels.csv order."""
    data = Path(data)
    files, folders, classes = [], [], []
    with (data / FLOWER_PHOTOS / "labels.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            files.append(f"{FLOWER_PHOTOS}/{row['file']}")
            folders.append(row["folder"])
            known = row["oxford_class"].strip()
            classes.append(int(known) if known not in ("", "-1") else UNKNOWN_CLASS)
    with (data / NONFLOWER / "labels.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            files.append(f"{NONFLOWER}/{row['file']}")
            folders.append(NONFLOWER_FOLDER)
            classes.append(UNKNOWN_CLASS)
    folder_array = np.array(folders)
    return RealWorld(
        files=files,
        folders=folder_array,
        oxford_class=np.array(classes, dtype=np.int64),
        is_flower=folder_array != NONFLOWER_FOLDER,
        fitting=split_half(files, folders),
        encoded=[(data / name).read_bytes() for name in files],
    )


def read_garden(data: str | Path) -> RealWorld:
    """garden_photos under `data`, in labels.csv order; its own `half` column cuts the halves."""
    return _read_halved(
        Path(data), GARDEN_PHOTOS, lambda row: row["folder"], lambda row: int(row["oxford_class"])
    )


def read_unknown(data: str | Path) -> RealWorld:
    """unknown_photos under `data`: a species outside the 102 (astilbe), in labels.csv order; its
    own `half` column cuts the halves."""
    return _read_halved(
        Path(data), UNKNOWN_PHOTOS, lambda row: row["species"], lambda _: UNKNOWN_CLASS
    )


def _read_halved(
    data: Path,
    name: str,
    folder_of: Callable[[dict[str, str]], str],
    class_of: Callable[[dict[str, str]], int],
) -> RealWorld:
    """A set of flowers whose labels.csv names each photo's `file` and `half` (fit or measure)."""
    folder = data / name
    with (folder / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return RealWorld(
        files=[f"{name}/{row['file']}" for row in rows],
        folders=np.array([folder_of(row) for row in rows]),
        oxford_class=np.array([class_of(row) for row in rows], dtype=np.int64),
        is_flower=np.ones(len(rows), dtype=bool),
        fitting=np.array([row["half"] == "fit" for row in rows]),
        encoded=[(folder / row["file"]).read_bytes() for row in rows],
    )
