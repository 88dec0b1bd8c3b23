"""New species named by users (storage/new_species.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from test_storage import ALICE, BOB, NOW, name_it, photo, predicted

from storage import (
    Database,
    Feedback,
    NewSpeciesStatus,
    add_new_species,
    approve,
    approve_when_enough,
    count_labelled_examples,
    ensure_user,
    labelled_examples,
    merge,
    new_species_by_key,
    new_species_counts,
    record_feedback,
    species_to_learn,
)

CAROL = 30_000_000_003


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


def test_approved_species_named_by_enough_users_join_the_training_examples(db: Database) -> None:
    with db.session() as session:
        tulip = add_new_species(session, "tulip", "Tulip")
        lone = add_new_species(session, "freesia", "Freesia")
        name_it(session, ALICE, 1, tulip)
        name_it(session, BOB, 2, tulip)
        for message_id in (3, 4, 5):
            name_it(session, CAROL, message_id, lone)  # one user only
        known = predicted(session, photo(session, BOB, 6), 7)
        record_feedback(session, known.photo_id, known.id, BOB, 7, "species 7")
        approve(session, tulip, NOW)
        approve(session, lone, NOW)  # approved, but one user alone cannot add a species
    with db.session() as session:
        learn = species_to_learn(session, min_users=2)
        assert [s.name for s in learn] == ["Tulip"]
        mapping = {learn[0].id: 102}
        examples = [(e.photo_id, e.species_index) for e in labelled_examples(session)]
        assert len(examples) == 1  # without the mapping, only the known species
        with_new = [
            (e.user_id, e.species_index) for e in labelled_examples(session, new_species=mapping)
        ]
        assert sorted(with_new) == sorted([(ALICE, 102), (BOB, 102), (BOB, 7)])
        assert count_labelled_examples(session, new_species=mapping) == 3
