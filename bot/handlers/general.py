"""/start, /help, /privacy, /forget, and the error handler."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services
from storage import forget_user

log = logging.getLogger(__name__)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    n_species = len(services(context).species)
    await update.effective_message.reply_text(replies.START.format(n_species=n_species))


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    days = services(context).settings.retention_days
    await update.effective_message.reply_text(replies.PRIVACY.format(days=days))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user_id = update.effective_user.id
    counts = await services(context).db(lambda s: forget_user(s, user_id))
    await update.effective_message.reply_text(replies.FORGOTTEN.format(**counts))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log with context; the user gets a short apology, never a traceback."""
    log.error("update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(replies.APOLOGY)
        except Exception:  # the apology itself may hit the same network trouble
            log.warning("could not send the apology", exc_info=True)
