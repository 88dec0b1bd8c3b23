"""Retraining's building blocks without the bot: the database lock and the per-user cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from model_training.retrain import user_weights
from storage import Database, lock_holder, release_lock, take_lock


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


def test_user_weights_cap_each_users_total():
    weights = user_weights(np.array([1] * 200 + [2, 2, 3]), cap=10)
    assert weights[:200].sum() == pytest.approx(10)
    assert weights[200:].tolist() == [1, 1, 1]
