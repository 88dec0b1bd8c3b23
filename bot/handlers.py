"""Telegram handlers: one small async function per kind of update, registered in bot/app.py."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session
from telegram import (
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    PhotoSize,
    Update,
    User,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import replies
from bot.inference import Answer
from bot.retraining import RetrainFailed, retrain_now, serve
from bot.services import Services, jpeg_bytes
from bot.species import match_species
from model_training.classifier import SpeciesScore
from model_training.photos import PhotoError
from storage import (
    ModelStatus,
    add_photo,
    add_prediction,
    delete_older_than,
    ensure_user,
    forget_user,
    last_photo,
    latest_prediction,
    list_versions,
    new_labels_since_last_run,
    promote,
    record_feedback,
    set_excluded,
    stats,
)

log = logging.getLogger(__name__)
MB = 1024 * 1024
NONE_OF_THESE, NOT_A_FLOWER = "none", "nf"


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]


# --- commands ------------------------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    n_species = len(services(context).species)
    await update.effective_message.reply_text(replies.START.format(n_species=n_species))


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    days = services(context).settings.retention_days
    await update.effective_message.reply_text(replies.PRIVACY.format(days=days))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user_id = update.effective_user.id
    counts = await services(context).db(lambda s: forget_user(s, user_id))
    context.user_data.clear()
    await update.effective_message.reply_text(replies.FORGOTTEN.format(**counts))


async def top5(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply /top5 to a photo to identify it; alone in a private chat, re-answer the last one."""
    message = update.effective_message
    target = message.reply_to_message
    if target is not None and _photo_file(target) is not None:
        await answer_photo(target, update, context)
    elif update.effective_chat.type == ChatType.PRIVATE:
        await _repeat_last_answer(update, context)
    else:
        await message.reply_text("Reply /top5 to a photo and I will identify it.", do_quote=True)


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await _is_admin(update, context):
        return
    report = await services(context).db(lambda s: stats(s, datetime.now(UTC)))
    await update.effective_message.reply_html(replies.stats_report(report))


async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admin: retrain now. Says so at once, then reports; the bot keeps answering meanwhile."""
    if not await _is_admin(update, context):
        return
    message = update.effective_message
    await message.reply_text(replies.RETRAIN_STARTED)
    await message.reply_html(await _retrain_and_describe(services(context)))


async def models_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await _is_admin(update, context):
        return
    versions = await services(context).db(list_versions)
    await update.effective_message.reply_html(replies.models_list(versions))


async def rollback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admin: /rollback VERSION serves an earlier version again (recorded, then swapped in)."""
    if not await _is_admin(update, context):
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
    """Admin: /exclude USER_ID keeps that user's feedback out of every future retraining."""
    if not await _is_admin(update, context):
        return
    message = update.effective_message
    if len(context.args) != 1 or not context.args[0].isdigit():
        await message.reply_text(replies.EXCLUDE_USAGE)
        return
    user_id = int(context.args[0])
    found = await services(context).db(lambda s: set_excluded(s, user_id, True))
    text = replies.EXCLUDED if found else replies.NO_SUCH_USER
    await message.reply_text(text.format(user_id=user_id))


async def _retrain_and_describe(svc: Services) -> str:
    try:
        report = await retrain_now(svc)
    except RetrainFailed as err:
        log.warning("retraining failed: %s", err)
        return replies.RETRAIN_FAILED.format(reason=err)
    if report is None:
        return replies.RETRAIN_BUSY
    promoted = report.status == ModelStatus.SERVING
    return replies.retrain_report(
        report.version, promoted, report.before, report.after, report.seconds
    )


# --- photos --------------------------------------------------------------------------------


async def private_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answer_photo(update.effective_message, update, context)


async def group_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In groups only photos captioned /top5 or mentioning the bot are answered."""
    caption = update.effective_message.caption or ""
    if caption.startswith("/top5") or f"@{context.bot.username}".lower() in caption.lower():
        await answer_photo(update.effective_message, update, context)


async def group_mention(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In groups, mentioning the bot in reply to a photo works like /top5."""
    message = update.effective_message
    target = message.reply_to_message
    mentioned = f"@{context.bot.username}".lower() in (message.text or "").lower()
    if mentioned and target is not None and _photo_file(target) is not None:
        await answer_photo(target, update, context)


async def not_a_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(replies.NOT_A_PHOTO)


async def answer_photo(photo: Message, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Download, identify, store and answer one photo message."""
    svc = services(context)
    user = update.effective_user
    if not svc.allow_photo(user.id):
        await update.effective_message.reply_text(replies.RATE_LIMITED)
        return
    file_ref = _photo_file(photo)
    limit = svc.settings.max_download_mb
    if file_ref is None or (file_ref.file_size or 0) > limit * MB:
        await photo.reply_text(replies.TOO_LARGE.format(mb=limit), do_quote=True)
        return
    await context.bot.send_chat_action(photo.chat_id, ChatAction.TYPING)
    try:
        data = bytes(await (await file_ref.get_file()).download_as_bytearray())
        answer = await svc.identifier.identify(data)
    except BadRequest as err:  # Telegram refuses downloads beyond its limit
        log.info("download refused for chat %s: %s", photo.chat_id, err)
        await photo.reply_text(replies.TOO_LARGE.format(mb=limit), do_quote=True)
        return
    except PhotoError as err:
        await photo.reply_text(replies.BAD_IMAGE.format(reason=err), do_quote=True)
        return
    photo_id = await svc.db(lambda s: _store_answer(s, user, photo, data, answer))
    await photo.reply_html(
        replies.top5_answer(answer.top5, answer.unsure, answer.is_flower),
        reply_markup=feedback_keyboard(photo_id, answer.top5),
        do_quote=True,
    )


def _photo_file(message: Message) -> PhotoSize | Document | None:
    if message.photo:
        return message.photo[-1]  # the largest size
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return document
    return None


def _store_answer(session: Session, user: User, photo: Message, data: bytes, answer: Answer) -> int:
    ensure_user(session, user.id, user.username, user.first_name)
    stored = add_photo(
        session,
        user_id=user.id,
        chat_id=photo.chat_id,
        message_id=photo.message_id,
        content_hash=hashlib.sha256(data).hexdigest(),
        image_jpeg=jpeg_bytes(answer.image),
        embedding=answer.features.astype("float32").tobytes(),
        embedding_shape=answer.features.shape,
    )
    add_prediction(
        session,
        stored.id,
        answer.model_version,
        [asdict(score) for score in answer.top5],
        answer.latency_ms,
    )
    return stored.id


async def _repeat_last_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The last photo's detailed top-5, from the current model (it may have been retrained)."""
    svc = services(context)
    user_id = update.effective_user.id
    stored = await svc.db(lambda s: last_photo(s, user_id))
    if stored is None:
        await update.effective_message.reply_text(replies.NO_LAST_PHOTO)
        return
    answer = await svc.identifier.identify(stored.image)
    await update.effective_message.reply_html(
        replies.top5_answer(answer.top5, answer.unsure, answer.is_flower),
        reply_markup=feedback_keyboard(stored.id, answer.top5),
    )


# --- feedback ------------------------------------------------------------------------------


def feedback_keyboard(photo_id: int, top5: list[SpeciesScore]) -> InlineKeyboardMarkup:
    """One button per proposed species, then "none of these" and "not a flower".

    Callback data is "fb:<photo id>:<species index | none | nf>": at most ~20 of Telegram's
    64 bytes, and it names the photo, so a second tap simply replaces the first answer.
    """
    rows = [
        [
            InlineKeyboardButton(
                replies.display_name(s.species), callback_data=f"fb:{photo_id}:{s.index}"
            )
        ]
        for s in top5
    ]
    rows.append(
        [
            InlineKeyboardButton("None of these", callback_data=f"fb:{photo_id}:{NONE_OF_THESE}"),
            InlineKeyboardButton("Not a flower", callback_data=f"fb:{photo_id}:{NOT_A_FLOWER}"),
        ]
    )
    return InlineKeyboardMarkup(rows)


async def feedback_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    prefix, photo_text, choice = query.data.split(":")
    photo_id = int(photo_text)
    if choice == NONE_OF_THESE:
        context.user_data["naming_photo"] = photo_id
        await query.answer()
        await query.message.reply_text(replies.ASK_NAME)
        return
    species_index = None if choice == NOT_A_FLOWER else int(choice)
    what = await _record(update, context, photo_id, species_index)
    if what is None:
        await query.answer("That photo is no longer stored.", show_alert=True)
        return
    await query.answer("Thanks!")
    thanks = replies.THANKS.format(what=what)
    if prefix == "fb":  # the answer itself: keep its text and buttons, add what was recorded
        answer_html = query.message.text_html.split(f"\n\n{replies.RECORDED_MARK}")[0]
        await query.edit_message_text(
            f"{answer_html}\n\n{replies.RECORDED_MARK} {thanks}",
            parse_mode="HTML",
            reply_markup=query.message.reply_markup,
        )
    else:  # the confirmation of a typed name
        await query.edit_message_text(thanks)


async def _record(
    update: Update, context: ContextTypes.DEFAULT_TYPE, photo_id: int, species_index: int | None
) -> str | None:
    """Commit the feedback (before anyone is thanked) and say what was recorded."""
    user = update.effective_user
    names = services(context).species
    species = names[species_index] if species_index is not None else None

    def work(session: Session) -> str | None:
        prediction = latest_prediction(session, photo_id)
        if prediction is None:
            return None
        ensure_user(session, user.id, user.username, user.first_name)
        record_feedback(
            session,
            photo_id=photo_id,
            prediction_id=prediction.id,
            user_id=user.id,
            species_index=species_index,
            species=species,
            not_a_flower=species_index is None,
        )
        return replies.display_name(species) if species else "not a flower"

    return await services(context).db(work)


async def typed_name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """After "none of these": match the typed name and confirm it with buttons."""
    photo_id = context.user_data.get("naming_photo")
    message = update.effective_message
    if photo_id is None:
        await message.reply_text("Send me a photo of a flower and I will identify it. /help")
        return
    names = services(context).species
    matches = match_species(message.text, names)
    if not matches:
        await message.reply_text(replies.NO_MATCH.format(typed=message.text[:60]))
        return
    del context.user_data["naming_photo"]
    buttons = [
        [InlineKeyboardButton(replies.display_name(names[i]), callback_data=f"nm:{photo_id}:{i}")]
        for i in matches
    ]
    await message.reply_text(replies.CONFIRM_NAME, reply_markup=InlineKeyboardMarkup(buttons))


# --- housekeeping --------------------------------------------------------------------------


async def _is_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    if update.effective_user.id in services(context).settings.admin_ids:
        return True
    await update.effective_message.reply_text(replies.NOT_ADMIN)
    return False


async def enforce_retention(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Scheduled: delete photos (and their predictions and feedback) past the retention time."""
    svc = services(context)
    cutoff = datetime.now(UTC) - timedelta(days=svc.settings.retention_days)
    deleted = await svc.db(lambda s: delete_older_than(s, cutoff))
    log.info("retention: deleted %d photos older than %s", deleted, cutoff.date())


async def scheduled_retrain(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Scheduled (RETRAIN_CRON): retrain when enough new labels have come in since last time."""
    svc = services(context)
    new_labels = await svc.db(new_labels_since_last_run)
    if new_labels < svc.settings.retrain_min_new_labels:
        log.info("retraining skipped: %d new labels", new_labels)
        return
    log.info("scheduled retraining: %s", await _retrain_and_describe(svc))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log with context; the user gets a short apology, never a traceback."""
    log.error("update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(replies.APOLOGY)
        except Exception:  # the apology itself may hit the same network trouble
            log.warning("could not send the apology", exc_info=True)
