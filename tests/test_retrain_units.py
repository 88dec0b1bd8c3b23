"""Retraining's building blocks without the bot: the database lock, the rows a retraining trains
on (base first, then the feedback that trains; about a fifth held out by a keyed hash of the
photo id; each user capped), the statistics of the gate, the gate itself, and the labels stored
by the bot arriving unchanged as training rows (and an excluded user's not at all)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.retraining import feedback_photos
from model_training.artifact import (
    BaseRows,
    Metadata,
    ModelArtifact,
    ModelFolderError,
    load_base_rows,
)
from model_training.heldout import HOLDOUT_EVERY, held_out
from model_training.model import FEATURE_DIM
from model_training.retrain import (
    MIN_HELDOUT,
    MIN_HELDOUT_USERS,
    LabelledPhoto,
    RetrainRows,
    Scores,
    changed_species,
    contradicted_users,
    gate,
    mcnemar,
    retrain,
    retrain_rows,
    score,
    user_weights,
    wilson,
    with_new_species_floor,
)
from model_training.train import (
    MAX_STEPS_PER_EPOCH,
    RowRecipe,
    batch_size_for,
    ema_momentum_for,
    fit_rows,
)
from storage import (
    Database,
    add_photo,
    add_prediction,
    count_labelled_examples,
    ensure_user,
    iter_labelled_examples,
    lock_holder,
    record_feedback,
    release_lock,
    set_excluded,
    take_lock,
)

VIEWS = 4
ALICE, EVE = 42, 66


def tiny_base(n_train: int = 3, n_heldout: int = 2, seed: int = 0) -> BaseRows:
    rng = np.random.default_rng(seed)
    return BaseRows(
        train_x=rng.random((n_train, FEATURE_DIM)).astype(np.float16),
        train_y=np.arange(n_train) % 3,
        heldout_x=rng.random((n_heldout, VIEWS, FEATURE_DIM)).astype(np.float16),
        heldout_y=np.arange(n_heldout) % 3,
    )


def photos(ids: list[int], user_id: int = ALICE, seed: int = 1) -> list[LabelledPhoto]:
    rng = np.random.default_rng(seed)
    return [
        LabelledPhoto(i, user_id, rng.random((VIEWS, FEATURE_DIM), dtype=np.float32), i % 3)
        for i in ids
    ]


def as_row(photo: LabelledPhoto) -> np.ndarray:
    """What a photo becomes in the rows: its views' mean, in float16."""
    return photo.features.mean(axis=0).astype(np.float16)


# -- the lock ------------------------------------------------------------------------------------


def test_the_lock_is_exclusive_and_expires(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'lock.sqlite'}")
    db.upgrade()
    now, ttl = datetime.now(UTC), timedelta(minutes=5)
    with db.session() as session:
        assert take_lock(session, "a", now, ttl)
    with db.session() as session:
        assert not take_lock(session, "b", now, ttl)
        release_lock(session, "b")  # not b's to release
    with db.session() as session:
        assert not take_lock(session, "b", now + timedelta(minutes=4), ttl)
        assert take_lock(session, "b", now + timedelta(minutes=6), ttl)  # a's has expired
        assert lock_holder(session) == "b"
        release_lock(session, "b")
        assert lock_holder(session) is None
    db.dispose()


# -- rows ----------------------------------------------------------------------------------------


def test_rows_are_base_first_then_the_feedback_that_trains():
    base = tiny_base(n_train=3)
    labelled = photos(list(range(1, 13)))  # ids 9 and 12 are held out
    rows = retrain_rows(base, iter(labelled), len(labelled), cap=100)
    trains = [p for p in labelled if not held_out(p.photo_id)]
    held = [p for p in labelled if held_out(p.photo_id)]
    assert [p.photo_id for p in held] == [9, 12]

    assert rows.n_feedback_train == len(trains) == 10
    assert len(rows.x) == len(rows.y) == len(rows.w) == 3 + 10
    assert rows.x.dtype == rows.heldout_x.dtype == np.float16
    assert rows.x.shape[1] == rows.heldout_x.shape[1] == FEATURE_DIM
    np.testing.assert_array_equal(rows.x[:3], base.train_x)
    np.testing.assert_array_equal(rows.x[3:], [as_row(p) for p in trains])
    assert rows.y.tolist() == [*base.train_y.tolist(), *[p.label for p in trains]]
    assert rows.w.tolist() == [1.0] * 13  # nobody is over the cap
    np.testing.assert_array_equal(rows.heldout_x, [as_row(p) for p in held])
    assert rows.heldout_y.tolist() == [p.label for p in held]
    assert rows.heldout_users.tolist() == [ALICE, ALICE]


def test_held_out_photos_are_chosen_by_a_keyed_hash_of_the_id():
    # Pinned: a change of key or rule would change which stored photos are held out.
    assert [i for i in range(1, 41) if held_out(i)] == [9, 12, 14, 24, 27, 29, 37, 40]
    assert sum(held_out(i) for i in range(1, 100_001)) == 20_038  # a fifth, give or take
    labelled = photos(list(range(1, 101)))
    rows = retrain_rows(tiny_base(), labelled, len(labelled), cap=100)
    assert (rows.n_feedback_train, len(rows.heldout_y)) == (81, 19)
    held = [as_row(p) for p in labelled if held_out(p.photo_id)]
    np.testing.assert_array_equal(rows.heldout_x, held)


def test_which_photos_are_held_out_does_not_depend_on_the_order_they_arrive():
    labelled = [
        LabelledPhoto(i, 100 + i % 7, np.full((VIEWS, FEATURE_DIM), i, np.float32), i % 3)
        for i in range(1, 301)
    ]
    shuffled = [labelled[k] for k in np.random.default_rng(0).permutation(len(labelled))]
    in_order = retrain_rows(tiny_base(), labelled, len(labelled), cap=100)
    mixed = retrain_rows(tiny_base(), shuffled, len(shuffled), cap=100)
    # Each row is its photo id repeated: the held-out ids, in whatever order they came.
    ids = sorted(in_order.heldout_x[:, 0].astype(int).tolist())
    assert ids == sorted(mixed.heldout_x[:, 0].astype(int).tolist())
    assert ids == [i for i in range(1, 301) if held_out(i)] and len(ids) == 76
    assert in_order.n_feedback_train == mixed.n_feedback_train == 224
    # Under the cap the order only decides which of a user's held-out photos count, not how many.
    capped = [retrain_rows(tiny_base(), p, len(p), cap=5) for p in (labelled, shuffled)]
    counts = [np.unique(rows.heldout_users, return_counts=True) for rows in capped]
    assert counts[0][0].tolist() == counts[1][0].tolist() == list(range(100, 107))
    assert counts[0][1].tolist() == counts[1][1].tolist() == [5] * 7


def test_users_taking_turns_are_all_held_out():
    """40 users, one photo each in a round, 669 photos: ids divisible by five fell on 8 users,
    whose cap left 40 held-out photos; the keyed hash spreads them over all 40."""
    labelled = [
        LabelledPhoto(i, 1000 + (i - 1) % 40, np.zeros((VIEWS, FEATURE_DIM), np.float32), 0)
        for i in range(1, 670)
    ]
    by_id = {(i - 1) % 40 for i in range(1, 670) if i % HOLDOUT_EVERY == 0}
    assert len(by_id) == 8  # the old choice
    rows = retrain_rows(tiny_base(), labelled, len(labelled), cap=5)
    users, counts = np.unique(rows.heldout_users, return_counts=True)
    assert len(users) == 40 and counts.min() == 1 and counts.max() == 5
    assert len(rows.heldout_y) == 145  # 151 held out, 6 over a user's cap
    assert rows.n_feedback_train == 669 - 151


def test_more_held_out_photos_than_a_fifth_still_fit():
    # Every one held out, each from another user (one user's held-out photos stop at the cap).
    held_ids = [i for i in range(1, 100) if held_out(i)][:12]
    labelled = [p for k, i in enumerate(held_ids) for p in photos([i], user_id=100 + k, seed=k)]
    rows = retrain_rows(tiny_base(n_train=3), labelled, len(labelled), cap=5)
    assert rows.n_feedback_train == 0 and len(rows.x) == len(rows.w) == 3
    np.testing.assert_array_equal(rows.heldout_x, [as_row(p) for p in labelled])
    assert rows.heldout_y.tolist() == [p.label for p in labelled]
    assert rows.heldout_users.tolist() == list(range(100, 112))


def test_no_labels_yet_gives_the_base_rows_alone():
    base = tiny_base(n_train=4)
    rows = retrain_rows(base, iter([]), 0, cap=5)
    np.testing.assert_array_equal(rows.x, base.train_x)
    assert rows.w.tolist() == [1.0] * 4
    assert rows.n_feedback_train == 0 and rows.heldout_x.shape == (0, FEATURE_DIM)


def test_one_user_with_200_photos_weighs_as_much_as_the_cap():
    eve = photos(list(range(1, 201)), user_id=EVE)  # 48 of them held out
    alice = photos([201, 203, 204], user_id=ALICE, seed=2)  # none held out
    rows = retrain_rows(tiny_base(n_train=3), eve + alice, 203, cap=5)
    assert rows.n_feedback_train == 152 + 3
    eve_weights, alice_weights = rows.w[3 : 3 + 152], rows.w[3 + 152 :]
    assert eve_weights.sum() == pytest.approx(5)
    np.testing.assert_allclose(eve_weights, 5 / 152)
    assert alice_weights.tolist() == [1.0, 1.0, 1.0]
    assert rows.w[:3].tolist() == [1.0, 1.0, 1.0]  # the base rows are never down-weighted
    # Eve's 48 held-out photos count as 5 for the gate: one user cannot carry a promotion.
    assert len(rows.heldout_y) == 5 and rows.heldout_users.tolist() == [EVE] * 5


def test_user_weights_cap_each_users_total():
    weights = user_weights(np.array([1] * 200 + [2, 2, 3]), cap=10)
    assert weights.dtype == np.float32
    assert weights[:200].sum() == pytest.approx(10)
    assert weights[200:].tolist() == [1, 1, 1]
    mixed = user_weights(np.array([7, 8, 7, 8, 7, 7]), cap=2)  # interleaved users
    assert mixed.tolist() == [0.5, 1, 0.5, 1, 0.5, 0.5]
    assert user_weights(np.array([], np.int64), cap=5).shape == (0,)


def test_a_new_species_weighs_as_much_as_the_median_known_one():
    # Base: species 0, 1, 2 with 4, 6, 10 rows; then feedback: 3 rows of known species 1, 3 of
    # new species 3 (capped to 0.5 each), 20 of new species 4.
    y = np.array([0] * 4 + [1] * 6 + [2] * 10 + [1] * 3 + [3] * 3 + [4] * 20)
    w = np.concatenate([np.ones(20), np.ones(3), np.full(3, 0.5), np.ones(20)]).astype(np.float32)
    floored = with_new_species_floor(y, w, first_new=3, n_base=20)
    assert floored[y == 3].sum() == pytest.approx(6.0)  # the median known species: 6 rows
    assert np.allclose(floored[y == 3], 2.0)  # scaled as a whole: users keep their shares
    assert np.array_equal(floored[y < 3], w[y < 3])  # known species and their feedback as given
    assert np.array_equal(floored[y == 4], w[y == 4])  # already above the floor
    assert w[y == 3].sum() == pytest.approx(1.5)  # the input is not changed in place


# -- statistics ----------------------------------------------------------------------------------


def right(n_right: int, n: int) -> np.ndarray:
    return np.arange(n) < n_right


@pytest.mark.parametrize(
    ("k", "n", "interval"),
    [(0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (5, 10, (0.2366, 0.7634))],
)
def test_wilson_interval_matches_reference_values(k, n, interval):
    low, high = wilson(right(k, n))
    assert (low, high) == pytest.approx(interval, abs=1e-4)


def test_wilson_interval_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((3, 17), (41, 50), (900, 1224)):
        reference = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(right(k, n)) == pytest.approx([reference.low, reference.high], abs=1e-4)
    assert wilson(np.zeros(0, bool)) == [0.0, 1.0]  # nothing measured: anything is possible


def paired(gained: int, lost: int, both: int = 0, neither: int = 0) -> tuple[np.ndarray, ...]:
    before = np.array([False] * gained + [True] * lost + [True] * both + [False] * neither, bool)
    after = np.array([True] * gained + [False] * lost + [True] * both + [False] * neither, bool)
    return before, after


def test_mcnemar_on_hand_computed_cases():
    ten_gained = mcnemar(*paired(10, 0, both=30))
    assert ten_gained["p_value"] == pytest.approx(1 / 1024)
    assert (ten_gained["gained"], ten_gained["lost"]) == (10, 0)
    assert ten_gained["difference"] == pytest.approx(10 / 40)
    low, high = ten_gained["difference_ci"]
    assert low < 10 / 40 < high

    assert mcnemar(*paired(0, 0, both=5, neither=5))["p_value"] == 1.0  # nothing changed
    assert mcnemar(*paired(0, 0))["p_value"] == 1.0  # nothing at all
    assert mcnemar(*paired(2, 1))["p_value"] == pytest.approx(4 / 8)  # P(X >= 2), X ~ B(3, 1/2)
    symmetric = mcnemar(*paired(5, 5, both=20))
    assert symmetric["p_value"] == pytest.approx(638 / 1024) and symmetric["p_value"] >= 0.5
    assert symmetric["difference"] == 0.0
    assert mcnemar(*paired(0, 10))["p_value"] == 1.0  # one-sided: worse is never significant


def test_mcnemar_agrees_with_scipys_exact_binomial_test():
    stats = pytest.importorskip("scipy.stats")
    for gained, lost in ((7, 1), (12, 9), (30, 14), (3, 0)):
        reference = stats.binomtest(gained, gained + lost, 0.5, alternative="greater").pvalue
        assert mcnemar(*paired(gained, lost, both=50))["p_value"] == pytest.approx(reference)


# -- the gate ------------------------------------------------------------------------------------


def scores(base: np.ndarray, feedback: np.ndarray, users: int = 10) -> Scores:
    """Held-out feedback photos from `users` users, dealt in turn."""
    return Scores(
        base_right=base, feedback_right=feedback, feedback_users=np.arange(len(feedback)) % users
    )


def test_gate_needs_enough_held_out_feedback():
    before, after = paired(MIN_HELDOUT - 1, 0)  # every single one gained, still too few
    promote, details = gate(scores(right(90, 100), before), scores(right(90, 100), after))
    assert not promote
    assert details["reason"] == f"only {MIN_HELDOUT - 1} held-out feedback photos (needs 20)"


def test_gate_needs_held_out_feedback_from_four_users():
    before, after = paired(MIN_HELDOUT, 0)  # 20 photos, every one gained: p = 1e-6
    three = gate(scores(right(90, 100), before, 3), scores(right(90, 100), after, 3))
    assert not three[0]
    assert three[1]["reason"] == "held-out feedback from too few users: 3 (needs 4)"
    four = gate(scores(right(90, 100), before, 4), scores(right(90, 100), after, 4))
    assert four[0] and four[1]["reason"] == "promoted" and MIN_HELDOUT_USERS == 4


def test_one_user_alone_is_never_promoted():
    """Eve labels 1,000 photos, and the candidate gets every held-out one right that the serving
    model got wrong: under the cap her held-out photos are 5, and with no cap at all (an admin's
    RETRAIN_MAX_PHOTOS_PER_USER of 1,000) they are one user's."""
    eve = [
        LabelledPhoto(i, EVE, np.zeros((VIEWS, FEATURE_DIM), np.float32), 0) for i in range(1, 1001)
    ]
    for cap, reason in (
        (5, "only 5 held-out feedback photos (needs 20)"),
        (1000, "held-out feedback from too few users: 1 (needs 4)"),
    ):
        rows = retrain_rows(tiny_base(), eve, len(eve), cap=cap)
        n = len(rows.heldout_y)
        before = Scores(right(90, 100), np.zeros(n, bool), rows.heldout_users)
        after = Scores(right(90, 100), np.ones(n, bool), rows.heldout_users)
        promote, details = gate(before, after)
        assert not promote and details["reason"] == reason, (cap, n)
    assert n == 213 and details["p_value"] < 1e-60  # evidence enough, from one person


def test_gate_promotes_a_significant_gain_that_keeps_the_base_set():
    before, after = paired(10, 0, both=30, neither=20)  # 60 held out, p = 1/1024
    promote, details = gate(scores(right(90, 100), before), scores(right(90, 100), after))
    assert promote, details
    assert details["reason"] == "promoted"
    assert details["base_drop"] == 0.0 and details["p_value"] == pytest.approx(1 / 1024)
    assert (details["gained"], details["lost"]) == (10, 0)


def test_gate_rejects_a_gain_that_costs_two_points_of_the_base_set():
    before, after = paired(10, 0, both=30, neither=20)
    promote, details = gate(scores(right(90, 100), before), scores(right(88, 100), after))
    assert not promote
    assert details["base_drop"] == pytest.approx(0.02)
    assert details["reason"] == "base held-out top-1 fell by 2.0 points"


def test_gate_allows_a_base_drop_of_exactly_one_point():
    """'loses at most one point of top-1 on the base held-out set' (MAX_BASE_DROP = 0.01)."""
    before, after = paired(10, 0, both=30, neither=20)
    promote, details = gate(scores(right(90, 100), before), scores(right(89, 100), after))
    assert promote, details


def test_gate_rejects_gains_that_could_be_chance_and_losses():
    not_significant = paired(3, 0, both=50)  # p = 1/8
    promote, details = gate(
        scores(right(9, 10), not_significant[0]), scores(right(9, 10), not_significant[1])
    )
    assert not promote and details["reason"] == "held-out feedback not better (McNemar p = 0.125)"
    worse = paired(0, 10, both=50)
    promote, details = gate(scores(right(9, 10), worse[0]), scores(right(9, 10), worse[1]))
    assert not promote and details["reason"].startswith("held-out feedback not better")


def test_changed_species_lists_the_largest_changes_first():
    names = ["a", "b", "c", "d"]
    labels = np.array([0, 0, 1, 1, 2, 3, 3])  # base held-out (5) then held-out feedback (2)
    before = scores(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0], bool))
    after = scores(np.array([1, 1, 1, 0, 0], bool), np.array([1, 1], bool))
    rows = changed_species(before, after, labels, names)
    assert [r["species"] for r in rows] == ["c", "b", "d"]  # a did not change
    assert rows[0] == {"species": "c", "before": 1.0, "after": 0.0, "photos": 1}
    assert rows[1] == {"species": "b", "before": 0.0, "after": 0.5, "photos": 2}


# -- fitting and scoring -------------------------------------------------------------------------


def separable(n_classes: int = 3, per_class: int = 20, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Rows around far-apart class centres, in float16 as retraining keeps them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, FEATURE_DIM))
    y = np.repeat(np.arange(n_classes), per_class)
    x = centres[y] + rng.normal(0, 0.1, (len(y), FEATURE_DIM))
    return x.astype(np.float16), y


def test_fit_rows_learns_a_separable_problem():
    x, y = separable()
    head, history = fit_rows(3, (x, y, None), RowRecipe(), epochs=10, seed=0)
    assert len(history["loss"]) == 10
    predicted = head.predict(x.astype(np.float32), verbose=0).argmax(axis=1)
    assert (predicted == y).mean() == 1.0


def test_fit_rows_ignores_rows_of_weight_zero():
    x, y = separable()
    poisoned = (y + 1) % 3  # every row again, with the wrong label, weighing nothing
    rows = np.concatenate([x, x]), np.concatenate([y, poisoned])
    weights = np.concatenate([np.ones(len(y)), np.zeros(len(y))]).astype(np.float32)
    head, _ = fit_rows(3, (*rows, weights), RowRecipe(), epochs=10, seed=0)
    assert (head.predict(x.astype(np.float32), verbose=0).argmax(axis=1) == y).mean() == 1.0


@pytest.mark.parametrize(
    ("steps_per_epoch", "momentum"), [(218, 0.99), (1000, 0.99), (10, 0.9), (2, 0.5), (1, 0.0)]
)
def test_weight_average_spans_at_most_about_one_epoch(steps_per_epoch: int, momentum: float):
    assert ema_momentum_for(steps_per_epoch, 0.99) == pytest.approx(momentum)


def test_served_head_is_the_average_of_its_last_weights():
    x, y = separable(per_class=400)  # 38 steps an epoch at batch 32: the average is on
    averaged, _ = fit_rows(3, (x, y, None), RowRecipe(), epochs=2, seed=0)
    last, _ = fit_rows(3, (x, y, None), RowRecipe(ema_momentum=0.0), epochs=2, seed=0)
    kernel_averaged, kernel_last = averaged.get_weights()[0], last.get_weights()[0]
    assert not np.allclose(kernel_averaged, kernel_last)
    assert (averaged.predict(x.astype(np.float32), verbose=0).argmax(axis=1) == y).mean() == 1.0


@pytest.mark.parametrize("rows", [1, 7_000, 32_000, 32_001, 108_000, 1_008_000])
def test_batch_grows_only_when_an_epoch_would_pass_the_step_limit(rows: int):
    batch = batch_size_for(rows, 32)
    assert -(-rows // batch) <= MAX_STEPS_PER_EPOCH
    # The smallest power-of-two multiple of 32 that does it: half of it would not.
    assert batch == 32 or -(-rows // (batch // 2)) > MAX_STEPS_PER_EPOCH
    assert batch % 32 == 0 and (batch // 32) & (batch // 32 - 1) == 0


def tiny_model() -> tuple[ModelArtifact, BaseRows, np.ndarray]:
    """A serving model fitted on separable base rows, and its base held-out set: 3 species."""
    x, y = separable(per_class=30)
    rng = np.random.default_rng(1)
    held = x[::5, None, :].astype(np.float32) + rng.normal(0, 0.05, (len(x[::5]), VIEWS, 1))
    base = BaseRows(x, y, held.astype(np.float16), y[::5])
    recipe = RowRecipe()
    head, _ = fit_rows(3, (x, y, None), recipe, epochs=5)
    metadata = Metadata(
        version="tiny-v1",
        classes=3,
        scaling=recipe.scaling,
        serve_views=list(recipe.serve_views),
        data_fingerprint="tiny",
        recipe={**recipe.as_dict(), "seed": 0, "epochs": 5},
    )
    centroids = np.eye(3, FEATURE_DIM, dtype=np.float32)
    return ModelArtifact(head, ["a", "b", "c"], metadata, centroids, base), base, x


def test_users_taking_turns_get_a_better_candidate_promoted():
    """The round robin above, through the whole retraining: 40 users label photos of three
    regions the base set lacks (like Flickr photos of known species), one photo each in turn."""
    serving, base, _ = tiny_model()
    rng = np.random.default_rng(7)
    regions = rng.normal(0, 1, (3, FEATURE_DIM))
    labelled = []
    for i in range(1, 670):
        label = i % 3
        features = regions[label] + rng.normal(0, 0.1, (VIEWS, FEATURE_DIM))
        labelled.append(LabelledPhoto(i, 1000 + (i - 1) % 40, features.astype(np.float32), label))
    rows = retrain_rows(base, labelled, len(labelled), cap=5)
    result = retrain(serving, base, rows, "tiny-turns")
    assert result.promote, result.gate
    assert result.gate["reason"] == "promoted" and result.gate["contradicted_users"] == 0
    assert (result.after["feedback_holdout"], result.after["feedback_holdout_users"]) == (145, 40)
    assert result.before["feedback_top1"] < 0.5 and result.after["feedback_top1"] == 1.0
    assert result.gate["lost"] == 0 and result.gate["p_value"] < 1e-20
    assert result.after["base_heldout_top1"] == result.before["base_heldout_top1"] == 1.0


def test_scores_are_per_photo_on_both_held_out_sets():
    serving, base, x = tiny_model()
    labelled = [
        LabelledPhoto(i, ALICE, np.repeat(x[i % len(x)][None], VIEWS, 0).astype(np.float32), 0)
        for i in range(1, 21)
    ]
    rows = retrain_rows(base, labelled, len(labelled), cap=5)
    measured = score(serving.head, base, rows)
    assert measured.base_right.shape == base.heldout_y.shape and measured.base_right.all()
    assert measured.feedback_right.shape == (3,)  # photos 9, 12 and 14
    summary = measured.summary()
    assert summary["base_heldout_top1"] == 1.0 and summary["feedback_holdout"] == 3
    assert summary["feedback_holdout_users"] == 1


def test_scores_without_held_out_feedback():
    """Photos 1 to 3 are none of them held out: the gate then says "only 0 held-out feedback
    photos", rather than the scoring failing."""
    serving, base, _ = tiny_model()
    rows = retrain_rows(base, photos([1, 2, 3]), 3, cap=5)
    measured = score(serving.head, base, rows)
    assert measured.feedback_right.shape == (0,)
    promote, details = gate(measured, measured)
    assert not promote and details["reason"].startswith("only 0 held-out feedback photos")


def test_retrain_fits_a_candidate_and_keeps_what_the_folder_needs(tmp_path):
    serving, base, x = tiny_model()
    rng = np.random.default_rng(3)
    labelled = [
        LabelledPhoto(i, ALICE + i % 2, (x[i % 90] + rng.normal(0, 0.05, (VIEWS, 1))), i % 90 // 30)
        for i in range(1, 31)
    ]
    rows = retrain_rows(base, labelled, len(labelled), cap=10)
    result = retrain(serving, base, rows, "tiny-r1")
    assert not result.promote  # 6 held-out photos are far too few to judge
    assert result.gate["reason"] == "only 6 held-out feedback photos (needs 20)"
    assert result.after["feedback_train"] == 24 and result.after["feedback_holdout"] == 6
    assert result.after["feedback_holdout_users"] == 2
    assert result.after["base_heldout_top1"] == 1.0
    assert set(result.before) == {
        "base_heldout_top1",
        "base_heldout_ci",
        "feedback_top1",
        "feedback_ci",
        "feedback_holdout",
        "feedback_holdout_users",
    }
    meta = result.candidate.metadata
    assert meta.version == "tiny-r1" and meta.recipe["retrained_from"] == "tiny-v1"
    assert meta.data_fingerprint == "tiny+feedback:24"
    folder = result.candidate.save(tmp_path / "tiny-r1")
    kept = load_base_rows(folder)  # the next retraining starts from the same base rows
    np.testing.assert_array_equal(kept.train_x, base.train_x)
    np.testing.assert_array_equal(kept.heldout_y, base.heldout_y)


def test_a_folder_without_base_rows_says_so(tmp_path):
    with pytest.raises(ModelFolderError, match="no base features in the model folder"):
        load_base_rows(tmp_path)


# -- from the database ---------------------------------------------------------------------------


def labelled_db(tmp_path: Path, photo_features: dict[int, list[np.ndarray]]) -> Database:
    """Each user's photos, each labelled by its sender with species (n % 3)."""
    db = Database(f"sqlite:///{tmp_path / 'labels.sqlite'}")
    db.upgrade()
    n = 0
    with db.session() as session:
        for user_id, features in photo_features.items():
            ensure_user(session, user_id)
            for photo_features in features:
                n += 1
                photo = add_photo(
                    session, user_id, user_id, n, f"{n:064x}", b"jpeg", photo_features, (640, 480)
                )
                guess = [{"species": "a", "index": 0, "confidence": 1.0}]
                prediction = add_prediction(session, photo.id, "v1", guess, 5.0)
                record_feedback(session, photo.id, prediction.id, user_id, n % 3, f"s{n % 3}")
    return db


def test_stored_features_come_back_as_labelled_photos(tmp_path):
    rng = np.random.default_rng(0)
    features = list(rng.random((HOLDOUT_EVERY + 2, VIEWS, FEATURE_DIM), dtype=np.float32))
    db = labelled_db(tmp_path, {ALICE: features})
    with db.session() as session:
        assert count_labelled_examples(session) == len(features)
        labelled = list(feedback_photos(iter_labelled_examples(session)))
    db.dispose()
    assert all(isinstance(p, LabelledPhoto) for p in labelled)
    assert [p.photo_id for p in labelled] == list(range(1, len(features) + 1))  # SQLite's ids
    assert [p.user_id for p in labelled] == [ALICE] * len(features)
    assert [p.label for p in labelled] == [n % 3 for n in range(1, len(features) + 1)]
    for photo, stored in zip(labelled, features, strict=True):
        assert photo.features.dtype == np.float32
        np.testing.assert_array_equal(photo.features, stored)


def build_rows(db: Database, base: BaseRows, cap: int) -> RetrainRows:
    """The training rows as the retraining child builds them from the database."""
    with db.session() as session:
        n_photos = count_labelled_examples(session)
        return retrain_rows(base, feedback_photos(iter_labelled_examples(session)), n_photos, cap)


def test_an_excluded_users_labels_never_reach_the_training_rows(tmp_path):
    rng = np.random.default_rng(0)
    alice = list(rng.random((10, VIEWS, FEATURE_DIM), dtype=np.float32))
    eve = list(rng.random((12, VIEWS, FEATURE_DIM), dtype=np.float32))
    db = labelled_db(tmp_path, {ALICE: alice, EVE: eve})  # Alice: photos 1-10, Eve: 11-22
    base = tiny_base(n_train=3)
    eve_rows = {as_row(LabelledPhoto(0, EVE, f, 0)).tobytes() for f in eve}

    everyone = build_rows(db, base, cap=100)
    assert everyone.n_feedback_train == 19 and len(everyone.heldout_y) == 3
    assert everyone.heldout_users.tolist() == [ALICE, EVE, EVE]
    trained = {row.tobytes() for row in everyone.x[3:]}
    assert len(trained & eve_rows) == 10  # her photos 12 and 14 are held out

    with db.session() as session:
        assert set_excluded(session, EVE, True)
    excluded = build_rows(db, base, cap=100)
    db.dispose()
    alice_trains = [f for n, f in enumerate(alice, start=1) if not held_out(n)]
    assert excluded.n_feedback_train == len(alice_trains) == 9
    np.testing.assert_array_equal(excluded.x[:3], base.train_x)
    np.testing.assert_array_equal(
        excluded.x[3:], [as_row(LabelledPhoto(0, ALICE, f, 0)) for f in alice_trains]
    )
    assert not {row.tobytes() for row in excluded.x} & eve_rows
    assert not {row.tobytes() for row in excluded.heldout_x} & eve_rows
    np.testing.assert_array_equal(
        excluded.heldout_x,
        [as_row(LabelledPhoto(0, ALICE, alice[8], 0))],  # photo 9
    )
    assert len(excluded.w) == 3 + 9


# -- labels that everyone else contradicts ----------------------------------------------------


def clustered(n: int, species: int, rng: np.random.Generator) -> np.ndarray:
    """n photos near species' own point in feature space (each view the same)."""
    centre = np.random.default_rng(100 + species).random(FEATURE_DIM)
    return centre + 0.05 * rng.standard_normal((n, FEATURE_DIM))


def test_a_user_whose_labels_everyone_contradicts_is_found():
    rng = np.random.default_rng(0)
    base_x = np.concatenate([clustered(30, s, rng) for s in range(3)])
    base = BaseRows(
        train_x=base_x.astype(np.float16),
        train_y=np.repeat(np.arange(3), 30),
        heldout_x=np.zeros((0, VIEWS, FEATURE_DIM), np.float16),
        heldout_y=np.zeros(0, np.int64),
    )
    labelled, photo_id = [], 1

    def label(user: int, species_seen: int, label_given: int, n: int) -> None:
        nonlocal photo_id
        for row in clustered(n, species_seen, rng):
            while held_out(photo_id):  # keep every photo in training
                photo_id += 1
            labelled.append(LabelledPhoto(photo_id, user, np.tile(row, (VIEWS, 1)), label_given))
            photo_id += 1

    label(ALICE, 0, 0, 20)  # honest
    label(ALICE, 2, 2, 5)
    label(7, 1, 1, 15)  # honest
    label(EVE, 0, 1, 20)  # species 0 labelled as 1, like sunflowers as "rose"
    label(8, 2, 3, 12)  # a species nobody else names: no evidence against user 8
    label(9, 0, 2, 4)  # wrong, but too few labels to judge
    rows = retrain_rows(base, labelled, len(labelled), cap=5)
    assert contradicted_users(rows) == [EVE]
