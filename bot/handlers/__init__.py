"""Telegram handlers, one small async function per kind of update, grouped by job and
registered in bot/app.py: general commands, photos, feedback, admin commands, scheduled jobs."""

from __future__ import annotations

from telegram import Update, User
from telegram.ext import ContextTypes

from bot.i18n import Translator, choose_language, translator
from bot.services import Services
from storage import user_language


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]


async def translator_for(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Translator:
    """The language of the user an update comes from: their /language choice, read from the
    database (another bot process may have stored it), else Telegram's language_code."""
    user = update.effective_user
    if user is None:
        return translator(choose_language(None, None))
    stored = await services(context).db(lambda s: user_language(s, user.id))
    return user_translator(user, stored)


def user_translator(user: User, stored_language: str | None) -> Translator:
    """The user's /language choice if they made one, else Telegram's language_code."""
    return translator(choose_language(stored_language, user.language_code))
