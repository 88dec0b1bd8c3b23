"""Data sets: Kaggle TFRecords (labelled and not) and class-per-folder images read back exactly."""

from __future__ import annotations

import io

import numpy as np
from conftest import OXFORD
from PIL import Image

from model_training.data import (
    UNLABELLED,
    PhotoSet,
    decoded_images,
    read_class_names,
    read_photo_set,
    read_split,
    write_tfrecords,
)


def jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (224, 224), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def small_set(labels: list[int]) -> PhotoSet:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return PhotoSet(
        [jpeg(colours[i % 3]) for i in range(len(labels))],
        np.asarray(labels, dtype=np.int64),
        [f"id{i:03d}" for i in range(len(labels))],
        ["red", "green", "blue"],
    )


def test_tfrecord_written_reads_back_identically(tmp_path) -> None:
    original = small_set([0, 1, 2, 1])
    write_tfrecords(tmp_path / "00-224x224-4.tfrec", original)
    (tmp_path / "classes.txt").write_text("red\ngreen\nblue\n")
    back = read_photo_set(tmp_path)
    assert back.encoded == original.encoded
    assert back.labels.tolist() == [0, 1, 2, 1]
    assert back.ids == original.ids
    assert back.class_names == ["red", "green", "blue"]
    assert back.fingerprint == original.fingerprint


def test_unlabelled_tfrecords_load_like_kaggles_test_split(tmp_path) -> None:
    write_tfrecords(tmp_path / "00-224x224-2.tfrec", small_set([UNLABELLED, UNLABELLED]))
    back = read_photo_set(tmp_path, class_names=read_class_names("kaggle104"))
    assert len(back) == 2
    assert back.labels.tolist() == [UNLABELLED, UNLABELLED]
    assert not back.labelled()


def test_class_per_folder_images(tmp_path) -> None:
    for name, colour in (("daisy", (250, 250, 250)), ("rose", (200, 0, 0))):
        (tmp_path / name).mkdir()
        for i in range(2):
            (tmp_path / name / f"{i}.jpg").write_bytes(jpeg(colour))
    (tmp_path / "rose" / "notes.txt").write_text("not a photo")
    photos = read_photo_set(tmp_path)
    assert photos.class_names == ["daisy", "rose"]
    assert photos.labels.tolist() == [0, 0, 1, 1]
    images = np.concatenate(list(decoded_images(photos.encoded, batch_size=3).as_numpy_iterator()))
    assert images.shape == (4, 224, 224, 3)
    assert images[2:, :, :, 0].mean() > 150 and images[2:, :, :, 1].mean() < 50  # roses are red


def test_kaggle_class_set_ships_104_clean_names() -> None:
    names = read_class_names("kaggle104")
    assert len(names) == 104
    assert names[102:] == ["common tulip", "wild rose"]
    assert "cyclamen" in names and all(n == n.strip() for n in names)


def test_oxford_splits_have_the_official_sizes() -> None:
    sizes = {split: len(read_split(OXFORD, split)) for split in ("train", "val")}
    assert sizes == {"train": 1020, "val": 1020}
    train = read_split(OXFORD, "train")
    assert len(train.class_names) == 102
    assert np.bincount(train.labels).tolist() == [10] * 102  # 10 photos per class
