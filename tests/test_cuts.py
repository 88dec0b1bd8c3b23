"""The cuts chosen by the honesty goals (model_training/cuts.py), on made-up scores whose answer
is known: the pair must meet every goal with its margin, and be the most useful that does."""

from __future__ import annotations

import numpy as np
import pytest

from model_training.cuts import (
    GOALS,
    Evidence,
    HonestyGoals,
    LeaveOutFold,
    Scored,
    choose_cuts,
    excess,
    figures_for,
    leave_out_folds,
    wilson_upper,
)

RNG = np.random.default_rng(31)


def known(n: int, right_share: float, shift: float = 0.0) -> Scored:
    """Known species: confident and near a species mean, mostly right; the wrong ones less so."""
    right = RNG.random(n) < right_share
    confidence = np.clip(RNG.normal(0.9, 0.08, n) - 0.25 * ~right, 0.01, 1.0)
    species = RNG.normal(2.0 + shift, 1.0, n) - 1.5 * ~right
    return Scored(confidence, species, right)


def unknown(n: int, shift: float = 0.0) -> Scored:
    """Species the model does not know: lower confidence and species scores, with overlap."""
    confidence = np.clip(RNG.normal(0.6, 0.2, n), 0.01, 1.0)
    return Scored(confidence, RNG.normal(0.0 + shift, 1.0, n))


def evidence() -> Evidence:
    return Evidence(
        calibration=known(2000, 0.95),
        known={"flower_photos": known(400, 0.6, -1.0), "garden_photos": known(600, 0.92)},
        unknown={"tulips": unknown(300, -0.5), "astilbe": unknown(300)},
        folds=[LeaveOutFold(known(1500, 0.95), unknown(600)) for _ in range(5)],
    )


def test_wilson_upper_end_adds_a_margin_that_shrinks_with_more_photos() -> None:
    assert wilson_upper(0.0, 0) == 0.0
    few, many = wilson_upper(1 / 87, 87), wilson_upper(10 / 870, 870)
    assert few > many > 10 / 870
    assert few == pytest.approx(0.038, abs=0.001)  # 1 in 87 counts as 3.8%
    assert wilson_upper(0.5, 100) < 0.57


def test_leave_out_folds_are_disjoint_random_and_each_has_a_species_with_real_world_rows() -> None:
    with_rows = np.array([3, 10, 40, 51, 60, 70, 80, 99])
    folds = leave_out_folds(102, with_rows, folds=5, per_fold=10, seed=0)
    assert [len(f) for f in folds] == [10] * 5
    everything = np.concatenate(folds)
    assert len(np.unique(everything)) == 50
    assert all(np.isin(f, with_rows).sum() == 1 for f in folds)
    assert not np.array_equal(folds[0], leave_out_folds(102, with_rows, seed=1)[0])
    np.testing.assert_array_equal(np.concatenate(leave_out_folds(102, with_rows)), everything)


def test_the_chosen_cuts_meet_every_goal_with_margin_and_are_the_most_useful() -> None:
    shown = evidence()
    choice = choose_cuts(shown)
    assert choice.goals_met
    figures = choice.figures
    assert excess(figures, GOALS) <= 0
    assert figures["left_out_sure_upper"] <= GOALS.left_out_sure_mean
    assert figures["left_out_sure_worst"] <= GOALS.left_out_sure_worst
    assert figures["tulips_sure_upper"] <= 0.04 and figures["astilbe_sure_upper"] <= 0.10
    assert figures["flower_photos_sure_and_wrong_upper"] <= 0.02
    # The served species cut is the chosen share of the calibration photos' scores.
    share = (shown.calibration.species < choice.unknown_species_below).mean()
    assert share == pytest.approx(choice.unknown_share, abs=0.001)
    # Usefulness: the looser neighbours on the grid (fewer photos "unknown species") miss a goal.
    share = choice.unknown_share - 0.02
    for unsure_below in (choice.unsure_below - 0.02, choice.unsure_below):
        if unsure_below >= 0.5 and share >= 0.02:
            figures, _ = figures_for(shown, unsure_below, share)
            assert excess(figures, GOALS) > 0


def test_stricter_goals_give_fewer_sure_answers() -> None:
    shown = evidence()
    loose = choose_cuts(shown)
    strict = choose_cuts(shown, HonestyGoals(left_out_sure_mean=0.03, left_out_sure_worst=0.04))
    assert strict.figures["calibration_sure"] < loose.figures["calibration_sure"]
    assert strict.figures["left_out_sure_mean"] < loose.figures["left_out_sure_mean"]


def test_goals_no_pair_can_meet_give_the_pair_that_misses_them_least() -> None:
    impossible = HonestyGoals(left_out_sure_mean=0.0001, left_out_sure_worst=0.0001)
    choice = choose_cuts(evidence(), impossible)
    assert not choice.goals_met
    # The strictest corner of the grid misses the least: the fewest unknowns named.
    assert choice.unsure_below >= 0.9 and choice.unknown_share >= 0.5
