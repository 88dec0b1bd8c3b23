"""Species the model does not know yet, as users name them: candidates, approval, merging.

Names arrive already normalised into a key by the caller (bot/species.py); near-identical
spellings are matched there too. Here: the rows, the counts an admin decides on, and the
approval rules (so that one user alone never makes a species).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.models import Feedback, NewSpecies


class NewSpeciesStatus(StrEnum):
    CANDIDATE = "candidate"
    APPROVED = "approved"  # the next retraining may add it to the model
    MERGED = "merged"  # another spelling of `merged_into`


class SpeciesCount(NamedTuple):
    species: NewSpecies
    photos: int
    users: int


def open_new_species(session: Session) -> list[NewSpecies]:
    """Candidates and approved species (not merged ones), oldest first."""
    statement = select(NewSpecies).where(NewSpecies.status != NewSpeciesStatus.MERGED)
    return list(session.scalars(statement.order_by(NewSpecies.id)))


def new_species_by_key(session: Session, key: str) -> NewSpecies | None:
    """The species under this key, following merges to the spelling that stands."""
    species = session.scalar(select(NewSpecies).where(NewSpecies.key == key))
    while species is not None and species.merged_into_id is not None:
        species = session.get(NewSpecies, species.merged_into_id)
    return species


def add_new_species(session: Session, key: str, name: str) -> NewSpecies:
    species = NewSpecies(key=key, name=name, status=NewSpeciesStatus.CANDIDATE)
    session.add(species)
    session.flush()  # the id goes into the confirm button
    return species


def new_species_counts(session: Session) -> list[SpeciesCount]:
    """Each open species with the photos labelled with it and the distinct users who did,
    most photos first."""
    counts = dict(
        (row.new_species_id, (row.photos, row.users))
        for row in session.execute(
            select(
                Feedback.new_species_id,
                func.count(func.distinct(Feedback.photo_id)).label("photos"),
                func.count(func.distinct(Feedback.user_id)).label("users"),
            )
            .where(Feedback.new_species_id.is_not(None))
            .group_by(Feedback.new_species_id)
        )
    )
    rows = [SpeciesCount(s, *counts.get(s.id, (0, 0))) for s in open_new_species(session)]
    return sorted(rows, key=lambda row: (-row.photos, row.species.id))


def approve(session: Session, species: NewSpecies, now: datetime) -> None:
    species.status = NewSpeciesStatus.APPROVED
    species.approved_at = now


def approve_when_enough(
    session: Session, species: NewSpecies, min_photos: int, min_users: int, now: datetime
) -> bool:
    """Approve a candidate once at least `min_photos` photos from `min_users` distinct users
    name it. True when it is approved now."""
    if species.status != NewSpeciesStatus.CANDIDATE:
        return False
    [count] = [c for c in new_species_counts(session) if c.species.id == species.id] or [None]
    if count is None or count.photos < min_photos or count.users < min_users:
        return False
    approve(session, species, now)
    return True


def merge(session: Session, merged: NewSpecies, into: NewSpecies) -> None:
    """`merged` is another spelling of `into`: its feedback moves over and its key stays, so
    that the next user typing it lands on `into`."""
    if merged.id == into.id:
        raise ValueError("a species cannot be merged into itself")
    session.execute(
        update(Feedback)
        .where(Feedback.new_species_id == merged.id)
        .values(new_species_id=into.id, species=into.name)
    )
    merged.status = NewSpeciesStatus.MERGED
    merged.merged_into_id = into.id


def species_to_learn(session: Session, min_users: int) -> list[NewSpecies]:
    """Approved species named by at least `min_users` distinct users (one user alone never adds
    a species to the model, even one an admin approved), oldest approval first."""
    enough = {c.species.id for c in new_species_counts(session) if c.users >= min_users}
    approved = [s for s in open_new_species(session) if s.status == NewSpeciesStatus.APPROVED]
    return sorted((s for s in approved if s.id in enough), key=lambda s: (s.approved_at, s.id))
