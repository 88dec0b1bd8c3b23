"""The learning experiment (bench/learning.py) as a test: users teach the bot through the Bot API.

40 simulated users label half of flower_photos' four known species (350 photos) through the fake
Bot API, with the buttons or "None of these" and the typed name; an admin sends /retrain. The
gate needs at least 20 held-out feedback photos (about a fifth of the labelled ones) from 4 users;
the whole half is labelled, for a gain the paired test can see; the probe is a balanced subset
of the other half, to keep the test within minutes.
The bot runs from the test's own empty folder (no ../shared in reach): the shipped model folder
and its database are all it has.

The simulation itself lives in bench/learning.py (loaded here by path: bench/ is no package).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, SHIPPED_MODEL, load_bench

from model_training.retrain import MIN_HELDOUT, MIN_HELDOUT_USERS

# Minutes: 550 photos through the bot, two retrainings in a child process, the probes.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

DATA = SHARED / "data" / "flower_photos"
USERS = 40
PROBE_PER_SPECIES = 20  # of the 87 per species in the probe half
# The bench sends 200. One user's held-out photos count at most the per-user cap at the gate,
# so any number is refused; 100 keeps the test shorter.
POISON_PHOTOS = 100
POISON_PROBE = 16  # probe-half sunflowers answered again after the poisoning
MIN_PROBE_GAIN = 0.10
MAX_BASE_DROP = 0.01


learning = load_bench("learning")


@pytest.fixture(scope="module")
def halves() -> tuple[list, list]:
    """(labelling, probe) halves of the 700 known-species photos, seed 0."""
    if not (DATA / "labels.csv").is_file():
        pytest.skip(f"no flower_photos data set at {DATA}")
    items = learning.load_items(DATA)
    learning.check_names(items)
    return learning.split_halves(items, 0.5, seed=0)


@pytest.fixture
def bot_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder for the bot, with no ../shared next to it."""
    monkeypatch.chdir(tmp_path)
    assert not (tmp_path.parent / "shared").exists()
    return tmp_path


def top1(predicted: np.ndarray, items: list) -> float:
    return float((predicted == learning.labels_of(items)).mean())


async def test_users_labels_are_learned_and_promoted(halves, bot_folder):
    labelling, probe_half = halves
    probe = learning.per_species(probe_half, PROBE_PER_SPECIES)
    before = learning.probe_top1(SHIPPED_MODEL, probe)

    # One user at a time: the photos' ids, and so which of them the gate holds out, are
    # the same on every run. With 8 photos in flight they follow the bot's timing, and the base
    # held-out drop varied between runs: 2 of 5 fell by 1.0 to 1.1 points (the gate allows 1.0).
    dealt = learning.shares(labelling, USERS, seed=0)
    run = await learning.labelled_and_retrained(dealt, concurrency=1)

    assert run.labelling.photos == len(labelling)
    assert run.candidate is not None, run.report
    assert run.promoted, run.report
    assert run.report.startswith(f"{run.candidate.version}: promoted, now serving.")
    assert run.bot_serving == run.candidate.version  # the running bot swapped the head in
    gate = run.candidate.metrics["gate"]
    assert run.candidate.metrics["after"]["feedback_holdout"] >= MIN_HELDOUT
    assert run.candidate.metrics["after"]["feedback_holdout_users"] >= MIN_HELDOUT_USERS
    assert gate["p_value"] < 0.05, run.report
    base_drop = run.metric("before", "base_heldout_top1") - run.metric("after", "base_heldout_top1")
    assert base_drop <= MAX_BASE_DROP + 1e-9, run.report  # exactly one point is allowed
    after = learning.probe_top1(run.folder(run.serving), probe)
    gain = top1(after, probe) - top1(before, probe)
    assert gain >= MIN_PROBE_GAIN, (
        f"probe top-1 {top1(before, probe):.1%} -> {top1(after, probe):.1%}\n{run.report}"
    )


async def test_one_user_labelling_sunflowers_rose_changes_nothing(halves, bot_folder):
    labelling, probe_half = halves
    dealt = learning.poison_share(labelling, POISON_PHOTOS)

    run = await learning.labelled_and_retrained(dealt)

    assert run.labelling.photos == POISON_PHOTOS
    assert run.candidate is not None, run.report
    assert not run.promoted
    assert ": not promoted: " in run.report.splitlines()[0]
    assert run.serving == run.shipped and run.bot_serving == run.shipped
    sunflowers = [i for i in probe_half if i.folder == learning.POISON_SPECIES][:POISON_PROBE]
    before = learning.probe_top1(SHIPPED_MODEL, sunflowers)
    after = learning.probe_top1(run.folder(run.serving), sunflowers)
    assert after.tolist() == before.tolist()
