"""The bot's database: users, photos with their embeddings, predictions and feedback.

Plain Python values in and out; nothing here knows Keras or Telegram.
"""

from storage.db import Database
from storage.models import Feedback, InstanceSetting, ModelVersion, Photo, Prediction, User
from storage.registry import (
    ModelStatus,
    add_version,
    get_version,
    list_versions,
    lock_holder,
    new_labels_since_last_run,
    newest_label_id,
    promote,
    register_first_version,
    release_lock,
    serving_version,
    take_lock,
)
from storage.report import Confusion, ModelAccuracy, Stats, stats
from storage.repository import (
    add_photo,
    add_prediction,
    delete_older_than,
    ensure_user,
    forget_user,
    last_photo,
    photo_by_message,
    prediction_by_id,
    record_feedback,
)
from storage.state import (
    ask,
    close_question,
    instance_setting,
    pending_question,
    take_photo_slot,
)
from storage.training import (
    LabelledExample,
    count_labelled_examples,
    iter_labelled_examples,
    labelled_examples,
    set_excluded,
)

__all__ = [
    "Confusion",
    "Database",
    "Feedback",
    "InstanceSetting",
    "LabelledExample",
    "ModelAccuracy",
    "ModelStatus",
    "ModelVersion",
    "Photo",
    "Prediction",
    "Stats",
    "User",
    "add_photo",
    "add_prediction",
    "add_version",
    "ask",
    "close_question",
    "count_labelled_examples",
    "delete_older_than",
    "ensure_user",
    "forget_user",
    "get_version",
    "instance_setting",
    "iter_labelled_examples",
    "labelled_examples",
    "last_photo",
    "list_versions",
    "lock_holder",
    "new_labels_since_last_run",
    "newest_label_id",
    "pending_question",
    "photo_by_message",
    "prediction_by_id",
    "promote",
    "record_feedback",
    "register_first_version",
    "release_lock",
    "serving_version",
    "set_excluded",
    "stats",
    "take_lock",
    "take_photo_slot",
]
