"""Retraining glue: the database's labels -> model_training.retrain in a child process -> registry.

The bot process takes the database lock, starts a "spawn" child (its own TensorFlow, so the
event loop and the serving model are never slowed or touched), waits for it off the event loop,
then swaps the promoted head in. The child writes the candidate folder atomically and records
it, its files and its promotion in one transaction: killed at any point, it leaves the old model
serving and the database as it was; the parent then frees the lock (or, if the parent died too,
the lock expires) and the next run starts clean. Other processes, on any machine, fetch the
promoted version from the database (bot/serving.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.config import Settings
from bot.services import Services
from bot.serving import model_folder, serve
from bot.species import normalise
from model_training.lite import NEEDS_TRAIN, has_tensorflow
from storage import (
    Database,
    LabelledExample,
    ModelStatus,
    add_version,
    count_labelled_examples,
    get_version,
    iter_labelled_examples,
    newest_label_id,
    promote,
    release_lock,
    serving_version,
    species_to_learn,
    store_model_files,
    take_lock,
)

if TYPE_CHECKING:
    from model_training.retrain import LabelledPhoto

log = logging.getLogger(__name__)
# Even with automatic approval off (SPECIES_MIN_USERS=0), one user alone never adds a species.
MIN_USERS_FOR_A_SPECIES = 2


@dataclass(frozen=True)
class RetrainReport:
    version: str
    status: str
    before: dict[str, Any]
    after: dict[str, Any]
    gate: dict[str, Any]
    seconds: float


class RetrainFailed(RuntimeError):
    pass


def feedback_photos(examples: Iterable[LabelledExample]) -> Iterator[LabelledPhoto]:
    from model_training.retrain import LabelledPhoto  # the child's: it imports Keras

    for e in examples:
        yield LabelledPhoto(e.photo_id, e.user_id, e.features, e.species_index)


def train_candidate(settings: Settings, version: str, errors: Connection) -> None:
    """The child process: train, gate, save and record one candidate (and promote it).
    A failure is sent back as one line for the admin (and the process exits non-zero)."""
    try:
        _train_candidate(settings, version)
    except Exception as err:
        errors.send(f"{err.__class__.__name__}: {err}" if not str(err) else str(err))
        raise


def _train_candidate(settings: Settings, version: str) -> None:
    from model_training.artifact import load_artifact, load_base_rows
    from model_training.retrain import retrain, retrain_rows

    database = Database(settings.database_url)
    with database.session() as session:
        serving = serving_version(session)
        if serving is None:
            raise RetrainFailed("no serving model in the registry")
        folder = model_folder(database, serving.version, settings)
        artifact = load_artifact(folder)
        base = load_base_rows(folder)
        # Approved new species the serving model does not know yet get the next class indices;
        # those it learnt in an earlier retraining keep theirs (their early labels still count).
        known = {normalise(name): i for i, name in enumerate(artifact.class_names)}
        min_users = max(MIN_USERS_FOR_A_SPECIES, settings.species_min_users)
        approved = species_to_learn(session, min_users)
        learn = [s for s in approved if s.key not in known]
        new_species = {s.id: known[s.key] for s in approved if s.key in known}
        new_species |= {s.id: len(known) + i for i, s in enumerate(learn)}
        n_photos = count_labelled_examples(session, new_species=new_species)
        rows = retrain_rows(
            base,
            feedback_photos(iter_labelled_examples(session, new_species=new_species)),
            n_photos,
            settings.retrain_max_photos_per_user,
        )
    class_names = [*artifact.class_names, *(s.key for s in learn)]
    result = retrain(artifact, base, rows, version, class_names=class_names)
    path = result.candidate.save(Path(settings.model_registry_dir) / version)
    metrics = {
        "before": result.before,
        "after": result.after,
        "gate": result.gate,
        "seconds": result.seconds,
    }
    # Recorded with its files and promoted together, or not at all. Rejected versions keep their
    # files too: /rollback may serve any version, on any machine.
    with database.session() as session:
        status = ModelStatus.CANDIDATE if result.promote else ModelStatus.REJECTED
        row = add_version(session, version, str(path), status, metrics)
        store_model_files(session, row, path)
        if result.promote:
            promote(session, version)
    database.dispose()


def _report(session: Session, version: str, seconds: float) -> RetrainReport:
    row = get_version(session, version)
    if row is None:
        raise RetrainFailed("the training process recorded no model")
    m = row.metrics
    return RetrainReport(row.version, row.status, m["before"], m["after"], m["gate"], seconds)


async def retrain_now(
    svc: Services, started: Callable[[], Awaitable[object]] | None = None
) -> RetrainReport | None:
    """One retraining, start to finish; `started` is awaited once the lock is taken. None:
    another one (any process) holds the lock."""
    if not has_tensorflow():
        raise RetrainFailed(f"retraining {NEEDS_TRAIN}")
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]
    ttl = timedelta(minutes=svc.settings.retrain_lock_minutes)
    if not await svc.db(lambda s: take_lock(s, owner, datetime.now(UTC), ttl)):
        return None
    seen = None
    try:
        if started is not None:
            await started()
        labels_through = await svc.db(newest_label_id)
        version = f"r{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
        spawn = multiprocessing.get_context("spawn")
        errors, child_errors = spawn.Pipe(duplex=False)
        child = spawn.Process(
            target=train_candidate,
            args=(svc.settings, version, child_errors),
            name="retrain",
            daemon=True,
        )
        started = time.perf_counter()
        child.start()
        svc.retrain_process = child
        await asyncio.to_thread(child.join)
        if child.exitcode != 0:
            why = errors.recv() if errors.poll() else f"exit code {child.exitcode}"
            raise RetrainFailed(why)
        seconds = round(time.perf_counter() - started, 1)  # all of it, loading data included
        report = await svc.db(lambda s: _report(s, version, seconds))
        if report.status == ModelStatus.SERVING:
            await serve(svc, report.version)
        seen = labels_through
        return report
    finally:
        svc.retrain_process = None
        await svc.db(lambda s: release_lock(s, owner, seen))
