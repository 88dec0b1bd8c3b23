"""What retraining takes from the database: labelled backbone features, minus excluded users."""

from __future__ import annotations

from typing import NamedTuple, cast

import numpy as np
from sqlalchemy import select
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


def labelled_examples(session: Session, since_id: int = 0) -> list[LabelledExample]:
    """One example per feedback naming a species, on photos with id > since_id, oldest first.
    Leaves out the feedback of excluded users and any feedback on excluded users' photos."""
    owner, author = aliased(User), aliased(User)
    rows = session.execute(
        select(
            Photo.id,
            Feedback.user_id,
            Photo.embedding,
            Photo.embedding_shape,
            Feedback.species_index,
        )
        .join(Feedback, Feedback.photo_id == Photo.id)
        .join(owner, owner.id == Photo.user_id)
        .join(author, author.id == Feedback.user_id)
        .where(
            Photo.id > since_id,
            Feedback.species_index.is_not(None),
            owner.excluded_from_training.is_(False),
            author.excluded_from_training.is_(False),
        )
        .order_by(Photo.id, Feedback.id)
    )
    return [
        LabelledExample(photo_id, user_id, decode_features(embedding, shape), cast(int, index))
        for photo_id, user_id, embedding, shape, index in rows
    ]
