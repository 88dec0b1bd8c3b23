"""Retraining glue: the database's labels -> model_training.retrain in a child process -> registry.

The bot process takes the database lock, starts a "spawn" child (its own TensorFlow, so the
event loop and the serving model are never slowed or touched), waits for it off the event loop,
then swaps the promoted head in. The child writes the candidate folder atomically and records
it, and its promotion, in one transaction: killed at any point, it leaves the old model serving
and the database as it was; the parent then frees the lock (or, if the parent died too, the lock
expires) and the next run starts clean.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.services import Services
from bot.serving import serve
from model_training.model import FEATURE_DIM
from storage import (
    Database,
    LabelledExample,
    ModelStatus,
    add_version,
    get_version,
    labelled_examples,
    newest_label_id,
    promote,
    release_lock,
    serving_version,
    take_lock,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainReport:
    version: str
    path: Path
    status: str
    before: dict[str, float]
    after: dict[str, float]
    seconds: float


class RetrainFailed(RuntimeError):
    pass


def feedback_arrays(examples: list[LabelledExample]) -> dict[str, np.ndarray]:
    features = [e.features for e in examples]
    return {
        "features": np.stack(features) if features else np.empty((0, 0, FEATURE_DIM), np.float32),
        "labels": np.array([e.species_index for e in examples], dtype=np.int64),
        "user_ids": np.array([e.user_id for e in examples], dtype=np.int64),
        "photo_ids": np.array([e.photo_id for e in examples], dtype=np.int64),
    }


def train_candidate(settings: Settings, version: str) -> None:
    """The child process: train, gate, save and record one candidate (and promote it)."""
    from model_training.artifact import load_artifact
    from model_training.retrain import FeedbackData, RetrainOptions, load_base, retrain
    from model_training.train import RECIPES

    assert settings.base_data_dir is not None  # retrain_now checks it before starting us
    database = Database(settings.database_url)
    with database.session() as session:
        serving = serving_version(session)
        if serving is None:
            raise RetrainFailed("no serving model in the registry")
        examples = labelled_examples(session)
    artifact = load_artifact(serving.path)
    base = load_base(
        settings.base_data_dir,
        settings.feature_cache_dir,
        artifact,
        RECIPES["default"].train_views,
    )
    options = RetrainOptions(
        epochs=settings.retrain_epochs,
        learning_rate=settings.retrain_learning_rate,
        max_photos_per_user=settings.retrain_max_photos_per_user,
    )
    feedback = FeedbackData(**feedback_arrays(examples))
    result = retrain(artifact, base, feedback, version, options)
    path = result.candidate.save(Path(settings.model_registry_dir) / version)
    metrics = {"before": result.before, "after": result.after, "seconds": result.seconds}
    with database.session() as session:  # recorded and promoted together, or not at all
        status = ModelStatus.CANDIDATE if result.promote else ModelStatus.REJECTED
        add_version(session, version, str(path), status, metrics)
        if result.promote:
            promote(session, version)
    database.dispose()


def _report(session: Session, version: str, seconds: float) -> RetrainReport:
    row = get_version(session, version)
    if row is None:
        raise RetrainFailed("the training process recorded no model")
    m = row.metrics
    return RetrainReport(row.version, Path(row.path), row.status, m["before"], m["after"], seconds)


async def retrain_now(svc: Services) -> RetrainReport | None:
    """One retraining, start to finish. None: another one (any process) holds the lock."""
    if svc.settings.base_data_dir is None:
        raise RetrainFailed("BASE_DATA_DIR is not set: retraining needs the base data set")
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]
    ttl = timedelta(minutes=svc.settings.retrain_lock_minutes)
    if not await svc.db(lambda s: take_lock(s, owner, datetime.now(UTC), ttl)):
        return None
    seen = None
    try:
        labels_through = await svc.db(newest_label_id)
        version = f"r{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
        child = multiprocessing.get_context("spawn").Process(
            target=train_candidate, args=(svc.settings, version), name="retrain", daemon=True
        )
        started = time.perf_counter()
        child.start()
        svc.retrain_process = child
        await asyncio.to_thread(child.join)
        if child.exitcode != 0:
            raise RetrainFailed(f"the training process ended with exit code {child.exitcode}")
        seconds = round(time.perf_counter() - started, 1)  # all of it, loading data included
        report = await svc.db(lambda s: _report(s, version, seconds))
        if report.status == ModelStatus.SERVING:
            await serve(svc, report.path)
        seen = labels_through
        return report
    finally:
        svc.retrain_process = None
        await svc.db(lambda s: release_lock(s, owner, seen))
