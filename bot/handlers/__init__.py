"""Telegram handlers, one small async function per kind of update, grouped by job and
registered in bot/app.py: general commands, photos, feedback, admin commands, scheduled jobs."""

from __future__ import annotations

from telegram.ext import ContextTypes

from bot.services import Services


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]
