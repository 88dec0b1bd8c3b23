"""Which model the bot serves, and where its folder comes from.

At start the registry's serving version, later a new one when swapped. A version whose files are
in the database (every one retraining records) is copied into this process's cache,
MODEL_REGISTRY_DIR, the first time it is needed, so processes on several machines share nothing
but the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

from bot.config import Settings
from bot.services import Services
from model_training.artifact import METADATA_FILE, ModelFolderError
from model_training.atomic import atomic_folder
from model_training.classifier import FlowerClassifier
from storage import (
    Database,
    get_version,
    has_model_files,
    register_first_version,
    serving_version,
    write_model_files,
)

log = logging.getLogger(__name__)
# /rollback and the registry poll may ask for one version at once: it is fetched once.
_fetching = threading.Lock()


def serving_classifier(database: Database, settings: Settings) -> FlowerClassifier:
    """The registry's serving version; on first start MODEL_DIR, registered as serving."""
    with database.session() as session:
        row = serving_version(session)
        if row is None:
            try:
                classifier = FlowerClassifier.from_folder(settings.model_dir)
            except ModelFolderError as err:  # the setting to fix, in the message
                raise ModelFolderError(f"MODEL_DIR: {err}") from None
            metrics = classifier.model.metadata.metrics
            row = register_first_version(
                session, classifier.version, str(settings.model_dir), metrics
            )
            if row.version == classifier.version:
                return classifier
        version = row.version
    return FlowerClassifier.from_folder(model_folder(database, version, settings))


def model_folder(database: Database, version: str, settings: Settings) -> Path:
    """The version's model folder on this machine.

    Its files in the database: the folder of that name in the cache, fetched the first time and
    put in place whole (a version never changes, so a folder of its name is it). Recorded
    without files (MODEL_DIR's first registration, or before revision 0008): the folder the
    registry names if this machine has it, or else MODEL_DIR if it holds that version, as the
    shipped model does wherever the package is installed.
    """
    with database.session() as session:
        row = get_version(session, version)
        if row is None:
            raise ModelFolderError(f"the registry has no model {version}")
        if not has_model_files(session, row):
            return _folder_of(version, Path(row.path), settings.model_dir)
        folder = Path(settings.model_registry_dir) / version
        with _fetching:
            if not folder.is_dir():
                log.info("fetching model %s from the database into %s", version, folder)
                with atomic_folder(folder, replace=False) as staging:
                    write_model_files(session, row, staging)
    return folder


def _folder_of(version: str, registered: Path, model_dir: Path) -> Path:
    if registered.is_dir():
        return registered
    metadata = model_dir / METADATA_FILE
    if metadata.is_file() and json.loads(metadata.read_text()).get("version") == version:
        return model_dir
    raise ModelFolderError(
        f"model {version} is neither in the database nor in {registered} (nor is it MODEL_DIR's)"
    )


async def serve(svc: Services, version: str) -> None:
    """Fetch and load a version off the event loop and switch to it: batches already running
    finish on the old one (BatchingIdentifier.swap)."""

    def load() -> FlowerClassifier:
        return FlowerClassifier.from_folder(model_folder(svc.database, version, svc.settings))

    classifier = await asyncio.to_thread(load)
    svc.identifier.swap(classifier)
    log.info("now serving %s", classifier.version)
