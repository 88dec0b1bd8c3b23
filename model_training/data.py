"""Photo data sets: Kaggle "Petals to the Metal" TFRecords and class-per-folder image directories.

Both read into `PhotoSet`: the encoded photos, their content hashes (the feature-cache key),
labels (-1 where a set is unlabelled, like Kaggle's test split) and the class names, which always
travel with the data (a classes.txt beside it, a known class set, or the folder names).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
import tensorflow as tf

from model_training.photos import INPUT_SIZE, load_photo

UNLABELLED = -1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".heic", ".heif", ".tif"}
KNOWN_CLASS_SETS = ("kaggle104",)

_TFRECORD_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "class": tf.io.FixedLenFeature([], tf.int64, default_value=UNLABELLED),
    "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


@dataclass(frozen=True)
class PhotoSet:
    encoded: list[bytes]
    labels: np.ndarray  # int64, UNLABELLED where unknown
    ids: list[str]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.encoded)

    @cached_property
    def keys(self) -> list[str]:
        """Content hashes: the same photo has the same key wherever it comes from."""
        return [content_hash(data) for data in self.encoded]

    @cached_property
    def fingerprint(self) -> str:
        """One hash of every photo and label, recorded with each model trained on the set."""
        digest = hashlib.sha256()
        for key, label in zip(self.keys, self.labels.tolist(), strict=True):
            digest.update(f"{key}:{label}\n".encode())
        return digest.hexdigest()

    def labelled(self) -> bool:
        return bool(len(self)) and bool((self.labels != UNLABELLED).all())


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_class_names(source: str | Path) -> list[str]:
    """A classes file (line N names class N) or the name of a known class set."""
    if str(source) in KNOWN_CLASS_SETS:
        text = resources.files("model_training.classsets").joinpath(f"{source}.txt").read_text()
    else:
        text = Path(source).read_text(encoding="utf-8")
    # Kaggle's own list has trailing spaces on two names ("cyclamen ", "hippeastrum ").
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_photo_set(path: str | Path, class_names: list[str] | None = None) -> PhotoSet:
    """A folder of *.tfrec files, or a folder with one sub-folder of images per class."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no data set folder at {folder}")
    if class_names is None:
        class_names = _classes_beside(folder)
    if sorted(folder.glob("*.tfrec")):
        return _read_tfrecords(folder, class_names)
    return _read_image_folders(folder, class_names)


def read_split(root: str | Path, split: str, class_names: list[str] | None = None) -> PhotoSet:
    """One split (train/val/test) of a data set laid out as root/<split>/."""
    return read_photo_set(Path(root) / split, class_names or _classes_beside(Path(root) / split))


def _classes_beside(folder: Path) -> list[str] | None:
    for candidate in (folder / "classes.txt", folder.parent / "classes.txt"):
        if candidate.is_file():
            return read_class_names(candidate)
    return None


def _read_tfrecords(folder: Path, class_names: list[str] | None) -> PhotoSet:
    if class_names is None:
        raise ValueError(f"{folder}: TFRecords need a classes.txt beside them or --classes")
    files = sorted(str(p) for p in folder.glob("*.tfrec"))
    records = tf.data.TFRecordDataset(
        files, num_parallel_reads=tf.data.AUTOTUNE, buffer_size=1 << 20
    )
    parsed = records.map(
        lambda r: tf.io.parse_single_example(r, _TFRECORD_FEATURES),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    encoded, labels, ids = [], [], []
    for example in parsed.as_numpy_iterator():
        encoded.append(example["image"])
        labels.append(example["class"])
        ids.append(example["id"].decode())
    return PhotoSet(encoded, np.asarray(labels, dtype=np.int64), ids, class_names)


def _read_image_folders(folder: Path, class_names: list[str] | None) -> PhotoSet:
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not class_dirs:
        raise ValueError(f"{folder}: neither *.tfrec files nor one folder per class")
    names = class_names or [d.name for d in class_dirs]
    index = {name: i for i, name in enumerate(names)}
    encoded, labels, ids = [], [], []
    for class_dir in class_dirs:
        if class_dir.name not in index:
            raise ValueError(f"{class_dir}: folder is not one of the {len(names)} class names")
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                encoded.append(file.read_bytes())
                labels.append(index[class_dir.name])
                ids.append(f"{class_dir.name}/{file.name}")
    return PhotoSet(encoded, np.asarray(labels, dtype=np.int64), ids, names)


def decoded_images(encoded: list[bytes], batch_size: int = 32) -> tf.data.Dataset:
    """Batches of 224x224 uint8 photos, decoded in parallel through the one photo decoder."""

    def decode(data: tf.Tensor) -> tf.Tensor:
        image = tf.numpy_function(lambda b: load_photo(bytes(b)), [data], tf.uint8)
        image.set_shape((INPUT_SIZE, INPUT_SIZE, 3))
        return image

    return (
        tf.data.Dataset.from_tensor_slices(tf.constant(encoded, dtype=tf.string))
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def write_tfrecords(path: str | Path, photos: PhotoSet) -> None:
    """Write photos in the Kaggle layout (used by tests and to package one's own data)."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for data, label, photo_id in zip(photos.encoded, photos.labels, photos.ids, strict=True):
            feature = {
                "image": _bytes_feature(data),
                "id": _bytes_feature(photo_id.encode()),
            }
            if label != UNLABELLED:
                feature["class"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
