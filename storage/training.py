"""What retraining takes from the database: labelled backbone features, minus excluded users."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple, cast

import numpy as np
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from storage.models import Feedback, Photo, User, decode_features


def set_excluded(session: Session, user_id: int, excluded: bool) -> bool:
    """Keep (or stop keeping) a user's data out of retraining. False: no such user."""
    user = session.get(User, user_id)
    if user is None:
        return False
    user.excluded_from_training = excluded
    return True


class LabelledExample(NamedTuple):
    photo_id: int
    user_id: int  # who gave the label
    features: np.ndarray  # (views, dim) backbone features
    species_index: int


def _labelled_query(
    since_id: int, new_species: Mapping[int, int]
) -> Select[tuple[int, int, bytes, str, int | None, int | None]]:
    owner, author = aliased(User), aliased(User)
    named = Feedback.species_index.is_not(None)
    if new_species:
        named = or_(named, Feedback.new_species_id.in_(list(new_species)))
    return (
        select(
            Photo.id,
            Feedback.user_id,
            Photo.embedding,
            Photo.embedding_shape,
            Feedback.species_index,
            Feedback.new_species_id,
        )
        .join(Feedback, Feedback.photo_id == Photo.id)
        .join(owner, owner.id == Photo.user_id)
        .join(author, author.id == Feedback.user_id)
        .where(
            Photo.id > since_id,
            named,
            owner.excluded_from_training.is_(False),
            author.excluded_from_training.is_(False),
        )
    )


def count_labelled_examples(
    session: Session, since_id: int = 0, new_species: Mapping[int, int] | None = None
) -> int:
    subquery = _labelled_query(since_id, new_species or {}).subquery()
    return session.scalar(select(func.count()).select_from(subquery)) or 0


def iter_labelled_examples(
    session: Session, since_id: int = 0, new_species: Mapping[int, int] | None = None
) -> Iterator[LabelledExample]:
    """One example per feedback naming a species, on photos with id > since_id, oldest first,
    read in chunks (a million labelled photos never sit in memory at once). Leaves out the
    feedback of excluded users and any feedback on excluded users' photos. `new_species` maps
    the new species to learn (by id) to their class index; feedback naming others is left out."""
    new_species = new_species or {}
    statement = _labelled_query(since_id, new_species).order_by(Photo.id, Feedback.id)
    rows = session.execute(statement.execution_options(yield_per=1000))
    for photo_id, user_id, embedding, shape, index, new_id in rows:
        label = index if index is not None else new_species[cast(int, new_id)]
        yield LabelledExample(photo_id, user_id, decode_features(embedding, shape), label)


def labelled_examples(
    session: Session, since_id: int = 0, new_species: Mapping[int, int] | None = None
) -> list[LabelledExample]:
    return list(iter_labelled_examples(session, since_id, new_species))
