"""Scheduled jobs (JobQueue): retention and retraining on a schedule."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session
from telegram.ext import ContextTypes

from bot.handlers import services
from bot.handlers.admin import retrain_and_describe
from bot.serving import serve
from storage import (
    delete_albums_older_than,
    delete_older_than,
    new_labels_since_last_run,
    serving_version,
)

log = logging.getLogger(__name__)


async def enforce_retention(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Delete photos (and their predictions and feedback) and albums past the retention time."""
    svc = services(context)
    cutoff = datetime.now(UTC) - timedelta(days=svc.settings.retention_days)

    def delete_old(session: Session) -> int:
        delete_albums_older_than(session, cutoff)
        return delete_older_than(session, cutoff)

    deleted = await svc.db(delete_old)
    log.info("retention: deleted %d photos older than %s", deleted, cutoff.date())


async def scheduled_retrain(context: ContextTypes.DEFAULT_TYPE) -> None:
    """RETRAIN_CRON: retrain when enough new labels have come in since last time."""
    svc = services(context)
    new_labels = await svc.db(new_labels_since_last_run)
    if new_labels < svc.settings.retrain_min_new_labels:
        log.info("retraining skipped: %d new labels", new_labels)
        return
    log.info("scheduled retraining: %s", await retrain_and_describe(svc))


async def follow_registry(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Serve the registry's serving version when another process promoted or rolled back."""
    svc = services(context)
    row = await svc.db(serving_version)
    if row is not None and row.version != svc.identifier.classifier.version:
        log.info("the registry serves %s now; switching", row.version)
        await serve(svc, row.version)
