"""Which model the bot serves: the registry's serving version at start, a new one when swapped."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.services import Services
from model_training.artifact import ModelFolderError
from model_training.classifier import FlowerClassifier
from storage import Database, register_first_version, serving_version

log = logging.getLogger(__name__)


def serving_classifier(database: Database, model_dir: Path) -> FlowerClassifier:
    """The registry's serving version; on first start MODEL_DIR, registered as serving."""
    with database.session() as session:
        row = serving_version(session)
        if row is None:
            try:
                classifier = FlowerClassifier.from_folder(model_dir)
            except ModelFolderError as err:  # the setting to fix, in the message
                raise ModelFolderError(f"MODEL_DIR: {err}") from None
            metrics = classifier.artifact.metadata.metrics
            row = register_first_version(session, classifier.version, str(model_dir), metrics)
            if row.version == classifier.version:
                return classifier
    return FlowerClassifier.from_folder(row.path)


async def serve(svc: Services, folder: Path) -> None:
    """Load a head off the event loop and switch to it: batches already running finish on the
    old one (BatchingIdentifier.swap)."""
    classifier = await asyncio.to_thread(FlowerClassifier.from_folder, folder)
    svc.identifier.swap(classifier)
    log.info("now serving %s", classifier.version)
