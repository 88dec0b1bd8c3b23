"""The bot's Application: every handler registered in one place, then polling or a webhook."""

from __future__ import annotations

import gc
import logging
import secrets
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alembic.util import CommandError
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from telegram import (
    BotCommand,
    LinkPreviewOptions,
    MenuButtonWebApp,
    Update,
    WebAppInfo,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    Defaults,
    MessageHandler,
    filters,
)
from tornado.netutil import bind_sockets

from bot import callbacks, replies
from bot.config import Settings
from bot.handlers import admin, feedback, general, identify, jobs, photos
from bot.health import start_health_server
from bot.i18n import DEFAULT, LANGUAGES, N_, Translator, check_catalogues, translator
from bot.inference import BatchingIdentifier
from bot.network import RetryingRateLimiter
from bot.overload import Backlog, NextInLine
from bot.services import Services
from bot.serving import serving_classifier
from storage import Database, instance_setting

log = logging.getLogger(__name__)
COMMANDS = {
    "top5": N_("the top-5 species of your last photo (or reply it to a photo)"),
    "privacy": N_("what I keep about you"),
    "forget": N_("delete everything I have from you"),
    "language": N_("English or Spanish"),
    "help": N_("how to use me"),
}


def commands(t: Translator) -> list[BotCommand]:
    return [BotCommand(name, t(description)) for name, description in COMMANDS.items()]


def webapp_menu_button(url: str) -> MenuButtonWebApp:
    """The button beside the chat's text field that opens the camera page."""
    return MenuButtonWebApp(replies.WEBAPP_BUTTON, WebAppInfo(url))


class StartError(RuntimeError):
    """What stops the bot before it answers anyone, said in one line: what to fix, and where."""


def check_ports(settings: Settings) -> None:
    """The ports the bot will listen on are free, said before the model loads (seconds) rather
    than after. Bound as tornado binds them (SO_REUSEADDR), all at once, then let go."""
    wanted = [("HEALTH_PORT", settings.health_listen, settings.health_port)]
    if settings.webhook_url:
        wanted.append(("WEBHOOK_PORT", settings.webhook_listen, settings.webhook_port))
    held = []
    try:
        for name, address, port in wanted:
            if not port:  # HEALTH_PORT=0: no health server
                continue
            try:
                held += bind_sockets(port, address)
            except OSError as err:
                raise StartError(
                    f"{name}: cannot listen on {address}:{port}: {err.strerror or err}"
                ) from None
    finally:
        for sock in held:
            sock.close()


def open_database(url: str, create: bool = True) -> Database:
    """The database, migrated to the code's schema (Alembic, at every start; a no-op when
    current), or a StartError saying why not: the server, file or folder the URL names.
    `create=False` (reading tools): a SQLite file that is not there is an error, not a new one."""
    try:
        database = Database(url)
    except NoSuchModuleError as err:  # an unknown database or driver name
        raise StartError(f"DATABASE_URL: {err}") from None
    except ArgumentError:  # its message echoes the URL, which may hold a password
        raise StartError(
            "DATABASE_URL is not a database URL (such as sqlite:///flowerbot.sqlite or "
            "postgresql+psycopg://user:password@host/name)"
        ) from None
    path = database.url.database
    sqlite_file = database.url.get_backend_name() == "sqlite" and path not in (None, "", ":memory:")
    if not create and sqlite_file and not Path(path).is_file():
        database.dispose()
        raise StartError(f"no database at {path}")
    try:
        database.upgrade()
    except (SQLAlchemyError, CommandError) as err:
        database.dispose()
        reason = err.orig if isinstance(err, DBAPIError) else err
        shown = database.url.render_as_string(hide_password=True)
        # Drivers' messages may run over several lines (psycopg: one per address tried).
        raise StartError(
            f"DATABASE_URL: cannot open {shown}: {' '.join(str(reason).split())}"
        ) from None
    return database


def build_application(settings: Settings) -> Application:
    check_catalogues()  # a missing catalogue stops the bot here, not a user's answer
    check_ports(settings)
    database = open_database(settings.database_url)
    classifier = serving_classifier(database, settings)
    identifier = BatchingIdentifier(classifier, settings.batch_size)
    backlog = Backlog(
        settings.one_view_after_seconds,
        settings.next_in_line_after_seconds,
        settings.backlog_window_seconds,
    )
    # Photos told "next in line" go to the model two batches at a time.
    next_in_line = NextInLine(working=2 * settings.batch_size)
    limiter = RetryingRateLimiter()  # Telegram's flood limits; network errors retried
    services = Services(settings, identifier, database, backlog, next_in_line, limiter)
    health = []

    async def post_init(app: Application) -> None:
        await identifier.start()
        await next_in_line.start()
        if settings.health_port:
            health.append(start_health_server(services, app.bot))
        # Telegram shows each user the list in their app's language, English otherwise.
        await app.bot.set_my_commands(commands(translator(DEFAULT)))
        for code in [code for code in LANGUAGES if code != DEFAULT]:
            await app.bot.set_my_commands(commands(translator(code)), language_code=code)
        if settings.webapp_url:  # the camera page, opened from the chat's menu button
            await app.bot.set_chat_menu_button(menu_button=webapp_menu_button(settings.webapp_url))
        # What start-up made (libraries, the model) lives as long as the bot: out of the cyclic
        # garbage collector's reach, whose full passes otherwise stopped every thread for about
        # 0.12 s four times a minute at 30 photos/s (0.008-0.017 s frozen). Collected first, so
        # that no garbage is kept for good.
        gc.collect()
        gc.freeze()

    async def post_stop(app: Application) -> None:
        # No more updates come in; the Bot API client is still open: answer the parked photos.
        await next_in_line.stop()

    async def post_shutdown(app: Application) -> None:
        for server in health:
            server.stop()
        await identifier.stop()
        services.close()

    app = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .rate_limiter(limiter)
        # httpcore checks every idle connection of its pool before each request: with PTB's
        # 256, a backlog of photos made every call slower (docs/production.md, "Under
        # overload"). 16 connections, and requests wait for one rather than failing after 1 s.
        .connection_pool_size(16)
        .pool_timeout(60)
        .concurrent_updates(True)  # photos from many chats reach the batcher together
        # Answers link each species to Wikipedia: no preview card under every answer.
        .defaults(Defaults(link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )
    app.bot_data["services"] = services
    register_handlers(app)
    app.job_queue.run_repeating(
        jobs.enforce_retention, interval=timedelta(hours=6), first=timedelta(seconds=30)
    )
    # Missed runs (the bot was down) coalesce into one; never two at once in this process.
    app.job_queue.run_custom(
        jobs.scheduled_retrain,
        job_kwargs={
            "trigger": CronTrigger.from_crontab(settings.retrain_cron, timezone=UTC),
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": None,
        },
        name="retrain",
    )
    # Another process may promote (retraining) or roll back: follow the registry.
    app.job_queue.run_repeating(
        jobs.follow_registry,
        interval=settings.registry_poll_seconds,
        first=settings.registry_poll_seconds,
    )
    return app


def register_handlers(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    groups = filters.ChatType.GROUPS
    image = filters.PHOTO | filters.Document.IMAGE
    anything_else = (
        filters.Document.ALL
        | filters.Sticker.ALL
        | filters.VIDEO
        | filters.VIDEO_NOTE
        | filters.ANIMATION
        | filters.VOICE
        | filters.AUDIO
        | filters.LOCATION
        | filters.CONTACT
    )
    app.add_handler(CommandHandler(["start", "help"], general.start))
    app.add_handler(CommandHandler("privacy", general.privacy))
    app.add_handler(CommandHandler("forget", general.forget))
    app.add_handler(CommandHandler("language", general.language))
    app.add_handler(CommandHandler("top5", photos.top5))
    app.add_handler(CommandHandler("stats", admin.stats_command))
    app.add_handler(CommandHandler("retrain", admin.retrain))
    app.add_handler(CommandHandler("models", admin.models_command))
    app.add_handler(CommandHandler("rollback", admin.rollback))
    app.add_handler(CommandHandler("exclude", admin.exclude))
    app.add_handler(CommandHandler("species", admin.species_command))
    app.add_handler(CommandHandler("addspecies", admin.add_species))
    app.add_handler(CommandHandler("identify", identify.identify_command, filters=private))
    app.add_handler(MessageHandler(private & image, photos.private_photo))
    app.add_handler(MessageHandler(groups & image, photos.group_photo))
    app.add_handler(
        MessageHandler(groups & filters.REPLY & filters.Entity("mention"), photos.group_mention)
    )
    app.add_handler(MessageHandler(private & anything_else, photos.not_a_photo))
    app.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, feedback.typed_name))
    app.add_handler(CallbackQueryHandler(feedback.feedback_button, pattern=callbacks.PATTERN))
    app.add_handler(
        CallbackQueryHandler(identify.identify_button, pattern=callbacks.IDENTIFY_PATTERN)
    )
    app.add_handler(CallbackQueryHandler(general.language_button, pattern=general.LANGUAGE_PATTERN))
    app.add_error_handler(general.on_error)


def webhook_secret(settings: Settings, database: Database) -> str:
    """WEBHOOK_SECRET, or the deployment's own, generated once and kept in the database."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    with database.session() as session:
        # token_urlsafe: A-Z, a-z, 0-9, "_" and "-", the characters Telegram allows.
        return instance_setting(session, "webhook_secret", lambda: secrets.token_urlsafe(32))


def webhook_options(settings: Settings, database: Database) -> dict[str, Any]:
    """Where PTB's webhook server listens, the URL Telegram is given, and the secret token that
    the server checks on every update (403 without it)."""
    assert settings.webhook_url is not None
    return {
        "listen": settings.webhook_listen,
        "port": settings.webhook_port,
        # The path a reverse proxy forwards: what Telegram POSTs to, e.g. /hook.
        "url_path": urlsplit(settings.webhook_url).path.lstrip("/"),
        "webhook_url": settings.webhook_url,
        "secret_token": webhook_secret(settings, database),
        "allowed_updates": Update.ALL_TYPES,
    }


def run(settings: Settings) -> None:
    """Polling, or PTB's webhook server. SIGINT and SIGTERM stop either gracefully: updates
    already received are answered first (Application.stop), unfetched ones stay with Telegram."""
    app = build_application(settings)
    if settings.webhook_url:
        app.run_webhook(**webhook_options(settings, app.bot_data["services"].database))
    else:
        # Polling takes over from a webhook left registered by an earlier run (deleteWebhook).
        app.run_polling(allowed_updates=Update.ALL_TYPES)
