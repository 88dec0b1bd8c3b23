"""The bot's database: users, photos with their embeddings, predictions and feedback.

Plain Python values in and out; nothing here knows Keras or Telegram.
"""

from storage.db import Database
from storage.models import Feedback, Photo, Prediction, User
from storage.report import Confusion, ModelAccuracy, Stats, stats
from storage.repository import (
    add_photo,
    add_prediction,
    delete_older_than,
    ensure_user,
    forget_user,
    last_photo,
    latest_prediction,
    photo_by_message,
    record_feedback,
)
from storage.training import LabelledExample, labelled_examples, set_excluded

__all__ = [
    "Confusion",
    "Database",
    "Feedback",
    "LabelledExample",
    "ModelAccuracy",
    "Photo",
    "Prediction",
    "Stats",
    "User",
    "add_photo",
    "add_prediction",
    "delete_older_than",
    "ensure_user",
    "forget_user",
    "labelled_examples",
    "last_photo",
    "latest_prediction",
    "photo_by_message",
    "record_feedback",
    "set_excluded",
    "stats",
]
