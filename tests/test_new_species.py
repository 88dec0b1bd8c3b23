"""New species named by users (storage/new_species.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from test_storage import ALICE, BOB, NOW, photo, predicted

from storage import (
    Database,
    Feedback,
    NewSpeciesStatus,
    add_new_species,
    approve,
    approve_when_enough,
    ensure_user,
    merge,
    new_species_by_key,
    new_species_counts,
    record_feedback,
)

CAROL = 30_000_000_003


def name_it(session, user: int, message_id: int, species) -> None:
    """`user` photographs something and labels it with the new species."""
    prediction = predicted(session, photo(session, user, message_id), 3)
    record_feedback(
        session,
        prediction.photo_id,
        prediction.id,
        user,
        species=species.name,
        new_species_id=species.id,
    )


def test_counts_photos_and_distinct_users(db: Database) -> None:
    with db.session() as session:
        tulip = add_new_species(session, "tulip", "Tulip")
        freesia = add_new_species(session, "freesia", "Freesia")
        for message_id in (1, 2, 3):
            name_it(session, ALICE, message_id, tulip)
        name_it(session, BOB, 4, tulip)
        name_it(session, BOB, 5, freesia)
    with db.session() as session:
        counts = [(c.species.name, c.photos, c.users) for c in new_species_counts(session)]
    assert counts == [("Tulip", 4, 2), ("Freesia", 1, 1)]


def test_a_name_needs_an_index_or_a_new_species(db: Database) -> None:
    with db.session() as session:
        prediction = predicted(session, photo(session, ALICE, 1), 3)
        with pytest.raises(ValueError):
            record_feedback(session, prediction.photo_id, prediction.id, ALICE, species="Tulip")


def test_one_user_alone_never_reaches_automatic_approval(db: Database) -> None:
    with db.session() as session:
        tulip = add_new_species(session, "tulip", "Tulip")
        for message_id in range(1, 31):
            name_it(session, ALICE, message_id, tulip)
        assert not approve_when_enough(session, tulip, 20, 3, NOW)
        name_it(session, BOB, 31, tulip)
        assert not approve_when_enough(session, tulip, 20, 3, NOW)
        name_it(session, CAROL, 32, tulip)
        assert approve_when_enough(session, tulip, 20, 3, NOW)
        assert tulip.status == NewSpeciesStatus.APPROVED and tulip.approved_at == NOW
        assert not approve_when_enough(session, tulip, 20, 3, NOW)  # already approved


def test_merging_moves_the_feedback_and_keeps_the_spelling_as_a_pointer(db: Database) -> None:
    with db.session() as session:
        tulip = add_new_species(session, "tulip", "Tulip")
        tulp = add_new_species(session, "tulp", "Tulp")
        name_it(session, ALICE, 1, tulip)
        name_it(session, BOB, 2, tulp)
        merge(session, tulp, tulip)
        with pytest.raises(ValueError):
            merge(session, tulip, tulip)
    with db.session() as session:
        assert new_species_by_key(session, "tulp").name == "Tulip"
        names = {f.species for f in session.scalars(select(Feedback))}
        counts = [(c.species.name, c.photos, c.users) for c in new_species_counts(session)]
    assert names == {"Tulip"}
    assert counts == [("Tulip", 2, 2)]  # the merged spelling is no longer listed


def test_approval_by_an_admin_is_kept(db: Database) -> None:
    with db.session() as session:
        ensure_user(session, ALICE)
        species = add_new_species(session, "bird of paradise", "Bird of paradise")
        approve(session, species, NOW + timedelta(days=1))
    with db.session() as session:
        stored = new_species_by_key(session, "bird of paradise")
        assert stored.status == NewSpeciesStatus.APPROVED
        assert stored.approved_at == NOW + timedelta(days=1)
