"""`flowerbot export-feedback`: what users taught, as a data set that `flowerbot train` reads back.
Excluded users' labels stay out; a user who sent /forget has nothing left to export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from flowerbot.cli import dispatch, parser
from storage import (
    Database,
    add_photo,
    add_prediction,
    ensure_user,
    forget_user,
    record_feedback,
    set_excluded,
)

ALICE, BOB, CAROL, DAVE = 101, 102, 103, 104
SPECIES = ("sunflower", "rose", "common dandelion")  # two sample photos each
INDEX = {"sunflower": 53, "rose": 73, "common dandelion": 49}


def labelled(session, user: int, jpeg: bytes, species: str, labellers: tuple[int, ...]) -> int:
    """A photo `user` sent, answered by v1, named `species` by each of `labellers`."""
    ensure_user(session, user)
    photo = add_photo(session, user, user, 1, "0" * 64, jpeg, np.zeros((4, 1280), np.float32))
    top5 = [{"species": species, "index": INDEX[species], "confidence": 0.9}]
    prediction = add_prediction(session, photo.id, "v1", top5, 10.0)
    for labeller in labellers:
        ensure_user(session, labeller)
        record_feedback(session, photo.id, prediction.id, labeller, INDEX[species], species)
    return photo.id


@pytest.fixture
def feedback_db(tmp_path: Path, sample_photos) -> tuple[str, dict[int, str]]:
    """30 photos Alice and Bob named (the first one both), 3 of Carol's, excluded, and 2 of
    Dave's, who sent /forget. Returns the URL and the species of each photo left to export."""
    url = f"sqlite:///{tmp_path / 'bot.sqlite'}"
    database = Database(url)
    database.upgrade()
    photos = [(p.read_bytes(), name) for p, _, name in sample_photos if name in SPECIES]
    assert len(photos) == 6
    kept = {}
    with database.session() as session:
        for i in range(30):
            jpeg, species = photos[i % 6]
            user = (ALICE, BOB)[i % 2]
            labellers = (ALICE, BOB) if i == 0 else (user,)
            kept[labelled(session, user, jpeg, species, labellers)] = species
        for i in range(3):
            labelled(session, CAROL, photos[i][0], "rose", (CAROL,))  # a poisoner, say
        for i in range(2):
            labelled(session, DAVE, photos[i][0], photos[i][1], (DAVE,))
    with database.session() as session:
        set_excluded(session, CAROL, True)
        forget_user(session, DAVE)
    database.dispose()
    return url, kept


@pytest.mark.slow  # the backbone over 30 photos' training views: about a minute and a half
def test_exported_feedback_trains_a_model_on_its_species(
    tmp_path: Path, feedback_db, capsys
) -> None:
    from model_training.artifact import load_artifact
    from model_training.data import read_split
    from model_training.heldout import held_out
    from model_training.workflow import evaluate_on_split

    url, kept = feedback_db
    out = tmp_path / "export"
    assert dispatch(parser(), ["export-feedback", "--out", str(out), "--database-url", url]) == 0
    summary = json.loads(capsys.readouterr().out)
    val = sorted(i for i in kept if held_out(i))
    assert summary == {
        "out": str(out),
        "photos": 30,
        "species": 3,
        "train": 30 - len(val),
        "val": len(val),
    }
    with (out / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {int(row["photo_id"]): row["species"] for row in rows} == kept  # no Carol, no Dave
    first = min(kept)
    assert [r["labellers"] for r in rows if int(r["photo_id"]) == first] == ["2"]
    assert {r["labellers"] for r in rows if int(r["photo_id"]) != first} == {"1"}
    assert {r["model_version"] for r in rows} == {"v1"}
    for row in rows:
        split = "val" if held_out(int(row["photo_id"])) else "train"
        assert row["file"] == f"{split}/{row['species']}/{row['photo_id']}.jpg"
        assert row["split"] == split and (out / row["file"]).is_file()
    assert (out / "classes.txt").read_text().split("\n")[:-1] == sorted(SPECIES)
    assert len(read_split(out, "train")) == 30 - len(val)

    # An existing folder is not written over.
    argv = ["export-feedback", "--out", str(out), "--database-url", url]
    assert dispatch(parser(), argv) == 2
    assert capsys.readouterr().err == f"flowerbot: {out} exists and is not an empty folder\n"

    # No test/ in an export: `train` picks the default recipe (train/, early stopping on val/).
    model, cache = tmp_path / "model", tmp_path / "features"
    argv = ["train", "--data", str(out), "--out", str(model), "--cache-dir", str(cache)]
    assert dispatch(parser(), argv) == 0
    artifact = load_artifact(model)
    assert artifact.class_names == sorted(SPECIES)
    assert artifact.metadata.recipe["name"] == "default"
    assert evaluate_on_split(artifact, out, "val", cache)["top1"] == 1.0  # photos it trained on
