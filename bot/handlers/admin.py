"""Admin commands (ADMIN_IDS): /stats, /retrain, /models, /rollback, /exclude."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from telegram import Update
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services
from bot.retraining import RetrainFailed, retrain_now
from bot.services import Services
from bot.serving import serve
from storage import list_versions, promote, set_excluded, stats

log = logging.getLogger(__name__)


async def is_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    if update.effective_user.id in services(context).settings.admin_ids:
        return True
    await update.effective_message.reply_text(replies.NOT_ADMIN)
    return False


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await is_admin(update, context):
        return
    report = await services(context).db(lambda s: stats(s, datetime.now(UTC)))
    await update.effective_message.reply_html(replies.stats_report(report))


async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Retrain now. Says so at once, then reports; the bot keeps answering meanwhile."""
    if not await is_admin(update, context):
        return
    message = update.effective_message
    # "Started" only once this process holds the lock: otherwise the answer is "busy" alone.
    report = await retrain_and_describe(
        services(context), started=lambda: message.reply_text(replies.RETRAIN_STARTED)
    )
    await message.reply_html(report)


async def models_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await is_admin(update, context):
        return
    versions = await services(context).db(list_versions)
    await update.effective_message.reply_html(replies.models_list(versions))


async def rollback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/rollback VERSION serves an earlier version again (recorded, then swapped in)."""
    if not await is_admin(update, context):
        return
    message = update.effective_message
    if len(context.args) != 1:
        await message.reply_text(replies.ROLLBACK_USAGE)
        return
    version = context.args[0]
    svc = services(context)
    row = await svc.db(lambda s: promote(s, version))
    if row is None:
        await message.reply_text(replies.NO_SUCH_VERSION.format(version=version))
        return
    await serve(svc, Path(row.path))
    await message.reply_text(replies.ROLLED_BACK.format(version=version))


async def exclude(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/exclude USER_ID keeps that user's feedback out of every future retraining."""
    if not await is_admin(update, context):
        return
    message = update.effective_message
    if len(context.args) != 1 or not context.args[0].isdigit():
        await message.reply_text(replies.EXCLUDE_USAGE)
        return
    user_id = int(context.args[0])
    found = await services(context).db(lambda s: set_excluded(s, user_id, True))
    text = replies.EXCLUDED if found else replies.NO_SUCH_USER
    await message.reply_text(text.format(user_id=user_id))


async def retrain_and_describe(
    svc: Services, started: Callable[[], Awaitable[object]] | None = None
) -> str:
    """One retraining (admin or schedule), as the text that reports it."""
    try:
        report = await retrain_now(svc, started)
    except RetrainFailed as err:
        log.warning("retraining failed: %s", err)
        return replies.RETRAIN_FAILED.format(reason=escape(str(err)))
    if report is None:
        return replies.RETRAIN_BUSY
    return replies.retrain_report(report)
