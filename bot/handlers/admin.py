"""Admin commands (ADMIN_IDS): /stats, /retrain, /models, /rollback, /exclude, /species,
/addspecies."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape
from typing import TypeVar

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services, translator_for
from bot.i18n import ENGLISH, Translator
from bot.retraining import RetrainFailed, retrain_now
from bot.services import Services
from bot.serving import serve
from bot.species import new_species_key
from storage import (
    approve,
    list_versions,
    merge,
    new_species_by_key,
    new_species_counts,
    promote,
    set_excluded,
    stats,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


async def is_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    if update.effective_user.id in services(context).settings.admin_ids:
        return True
    t = await translator_for(update, context)
    await update.effective_message.reply_text(t(replies.NOT_ADMIN))
    return False


async def reply_with_report(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    read: Callable[[Session], T],
    report: Callable[[T, Translator], str],
) -> None:
    """The read-only admin commands (/stats, /models, /species) differ only in what they read
    and how it is worded: refused to others, else `read`'s result as `report` puts it."""
    if not await is_admin(update, context):
        return
    t = await translator_for(update, context)
    found = await services(context).db(read)
    await update.effective_message.reply_html(report(found, t))


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await reply_with_report(
        update, context, lambda s: stats(s, datetime.now(UTC)), replies.stats_report
    )


async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Retrain now. Says so at once, then reports; the bot keeps answering meanwhile."""
    if not await is_admin(update, context):
        return
    message = update.effective_message
    t = await translator_for(update, context)
    # "Started" only once this process holds the lock: otherwise the answer is "busy" alone.
    report = await retrain_and_describe(
        services(context), started=lambda: message.reply_text(t(replies.RETRAIN_STARTED)), t=t
    )
    await message.reply_html(report)


async def models_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await reply_with_report(update, context, list_versions, replies.models_list)


async def rollback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/rollback VERSION serves an earlier version again (recorded, then swapped in)."""
    if not await is_admin(update, context):
        return
    message = update.effective_message
    t = await translator_for(update, context)
    if len(context.args) != 1:
        await message.reply_text(t(replies.ROLLBACK_USAGE))
        return
    version = context.args[0]
    svc = services(context)
    row = await svc.db(lambda s: promote(s, version))
    if row is None:
        await message.reply_text(t(replies.NO_SUCH_VERSION).format(version=version))
        return
    await serve(svc, row.version)
    await message.reply_text(t(replies.ROLLED_BACK).format(version=version))


async def exclude(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/exclude USER_ID keeps that user's feedback out of every future retraining."""
    if not await is_admin(update, context):
        return
    message = update.effective_message
    t = await translator_for(update, context)
    if len(context.args) != 1 or not context.args[0].isdigit():
        await message.reply_text(t(replies.EXCLUDE_USAGE))
        return
    user_id = int(context.args[0])
    found = await services(context).db(lambda s: set_excluded(s, user_id, True))
    text = replies.EXCLUDED if found else replies.NO_SUCH_USER
    await message.reply_text(t(text).format(user_id=user_id))


async def species_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/species: the new species users named, with their photos and distinct users."""
    await reply_with_report(update, context, new_species_counts, replies.new_species_list)


async def add_species(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/addspecies NAME approves a new species; /addspecies NAME = OTHER merges NAME into OTHER."""
    if not await is_admin(update, context):
        return
    message = update.effective_message
    t = await translator_for(update, context)
    names = [part.strip() for part in " ".join(context.args).split("=")]
    keys = [new_species_key(name) for name in names]
    if not 1 <= len(keys) <= 2 or None in keys:
        await message.reply_text(t(replies.NEW_SPECIES_USAGE))
        return

    def work(session: Session) -> str:
        found = [new_species_by_key(session, key) for key in keys]
        for name, species in zip(names, found, strict=True):
            if species is None:
                return t(replies.NO_SUCH_NEW_SPECIES).format(name=name)
        if len(found) == 1:
            approve(session, found[0], datetime.now(UTC))
            return t(replies.NEW_SPECIES_APPROVED).format(name=found[0].name)
        merged, into = found
        if merged.id == into.id:
            return t(replies.NEW_SPECIES_MERGED).format(merged=names[0], name=into.name)
        merge(session, merged, into)
        return t(replies.NEW_SPECIES_MERGED).format(merged=merged.name, name=into.name)

    await message.reply_text(await services(context).db(work))


async def retrain_and_describe(
    svc: Services,
    started: Callable[[], Awaitable[object]] | None = None,
    t: Translator = ENGLISH,  # the schedule's report goes to the log
) -> str:
    """One retraining (admin or schedule), as the text that reports it."""
    try:
        report = await retrain_now(svc, started)
    except RetrainFailed as err:
        log.warning("retraining failed: %s", err)
        return t(replies.RETRAIN_FAILED).format(reason=escape(str(err)))
    if report is None:
        return t(replies.RETRAIN_BUSY)
    return replies.retrain_report(report, t)
