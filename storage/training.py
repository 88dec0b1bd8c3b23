"""What retraining takes from the database: labelled backbone features, minus excluded users;
and the labelled photos themselves, for `flowerbot export-feedback`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, TypeVar, cast

import numpy as np
from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from storage.models import Feedback, NewSpecies, Photo, Prediction, User, decode_features
from storage.new_species import NewSpeciesStatus


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


S = TypeVar("S", bound=Select[Any])


def _not_excluded(statement: S) -> S:
    """Feedback (joined to its photo) of users not excluded, on photos of users not excluded."""
    owner, author = aliased(User), aliased(User)
    return (
        statement.join(owner, owner.id == Photo.user_id)
        .join(author, author.id == Feedback.user_id)
        .where(owner.excluded_from_training.is_(False), author.excluded_from_training.is_(False))
    )


def _labelled_query(
    since_id: int, new_species: Mapping[int, int]
) -> Select[tuple[int, int, bytes, str, int | None, int | None]]:
    named = Feedback.species_index.is_not(None)
    if new_species:
        named = or_(named, Feedback.new_species_id.in_(list(new_species)))
    statement = select(
        Photo.id,
        Feedback.user_id,
        Photo.embedding,
        Photo.embedding_shape,
        Feedback.species_index,
        Feedback.new_species_id,
    ).join(Feedback, Feedback.photo_id == Photo.id)
    return _not_excluded(statement).where(Photo.id > since_id, named)


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


class LabelledJpeg(NamedTuple):
    photo_id: int
    species: str  # the model's class name, or an approved new species' key
    labellers: int  # distinct users who named this species for the photo
    model_version: str  # the version whose answer was the first one labelled
    jpeg: bytes  # the 224x224 photo the model saw


def iter_labelled_jpegs(session: Session) -> Iterator[LabelledJpeg]:
    """Every photo with each species users named for it (a photo two users named differently
    comes once per species), oldest first, read in chunks. The same users are left out as from
    retraining; new species count once approved (merged spellings already point to theirs)."""
    species = case(
        (Feedback.new_species_id.is_not(None), NewSpecies.key), else_=Feedback.species
    ).label("species")
    named = or_(Feedback.species_index.is_not(None), NewSpecies.status == NewSpeciesStatus.APPROVED)
    labels = _not_excluded(
        select(
            Feedback.photo_id,
            species,
            func.count(func.distinct(Feedback.user_id)).label("labellers"),
            func.min(Feedback.prediction_id).label("prediction_id"),
        )
        .join(Photo, Photo.id == Feedback.photo_id)
        .outerjoin(NewSpecies, NewSpecies.id == Feedback.new_species_id)
        .where(named)
    ).group_by(Feedback.photo_id, species)
    grouped = labels.subquery()
    statement = (
        select(
            grouped.c.photo_id,
            grouped.c.species,
            grouped.c.labellers,
            Prediction.model_version,
            Photo.image,
        )
        .join(Photo, Photo.id == grouped.c.photo_id)
        .join(Prediction, Prediction.id == grouped.c.prediction_id)
        .order_by(grouped.c.photo_id, grouped.c.species)
    )
    for row in session.execute(statement.execution_options(yield_per=100)):
        yield LabelledJpeg(*row)
