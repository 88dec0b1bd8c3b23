"""/start, /help, /privacy, /forget, /language, and the error handler."""

from __future__ import annotations

import logging
import re

from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services, translator_for
from bot.i18n import LANGUAGES, choose_language, translator
from storage import ensure_user, forget_user, set_language

log = logging.getLogger(__name__)


# The buttons under /language: "lang:<code>", apart from the feedback buttons' data.
LANGUAGE_PATTERN = rf"^lang:({'|'.join(LANGUAGES)})\Z"


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    t = await translator_for(update, context)
    svc = services(context)
    text = t(replies.START).format(n_species=t.number(len(svc.species)))
    if svc.settings.webapp_url:
        text += "\n\n" + t(replies.WEBAPP_HINT).format(button=replies.WEBAPP_BUTTON)
    await update.effective_message.reply_text(text)


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    t = await translator_for(update, context)
    days = services(context).settings.retention_days
    await update.effective_message.reply_text(t(replies.PRIVACY).format(days=days))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    # Read before forgetting: the stored choice goes with the user's row.
    t = await translator_for(update, context)
    user_id = update.effective_user.id
    counts = await services(context).db(lambda s: forget_user(s, user_id))
    numbers = {key: t.number(value) for key, value in counts.items()}
    await update.effective_message.reply_text(t(replies.FORGOTTEN).format(**numbers))


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/language es or /language en switches at once; /language alone offers buttons."""
    message = update.effective_message
    if context.args:
        wanted = context.args[0].casefold()
        if len(context.args) == 1 and wanted in LANGUAGES:
            await message.reply_text(await _switch(update, context, wanted))
            return
    t = await translator_for(update, context)
    buttons = [
        InlineKeyboardButton(name, callback_data=f"lang:{code}") for code, name in LANGUAGES.items()
    ]
    await message.reply_text(
        t(replies.CHOOSE_LANGUAGE).format(codes=", ".join(LANGUAGES)),
        reply_markup=InlineKeyboardMarkup([buttons]),
    )


async def language_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    code = re.match(LANGUAGE_PATTERN, query.data).group(1)
    text = await _switch(update, context, code)
    await query.answer()
    await query.edit_message_text(text)


async def _switch(update: Update, context: ContextTypes.DEFAULT_TYPE, code: str) -> str:
    """Store the user's language (in the database: every bot process follows it); the
    confirmation, in that language."""
    user = update.effective_user

    def work(session: Session) -> None:
        ensure_user(session, user.id, user.username, user.first_name)
        set_language(session, user.id, code)

    await services(context).db(work)
    t = translator(choose_language(code, user.language_code))
    return t(replies.LANGUAGE_SET).format(language=t.language_name)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log with context; the user gets a short apology, never a traceback."""
    log.error("update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            # Telegram's language only: the database may be what failed.
            user = update.effective_user
            t = translator(choose_language(None, user.language_code if user else None))
            await update.effective_message.reply_text(t(replies.APOLOGY))
        except Exception:  # the apology itself may hit the same network trouble
            log.warning("could not send the apology", exc_info=True)
