"""Photos in, answers out: private photos, groups (/top5, captions, mentions), and /top5 again.

Every answer sent with feedback buttons is stored first as its own prediction, and the buttons
name that prediction: a tap always belongs to the answer the user saw.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict

from sqlalchemy.orm import Session
from telegram import Document, Message, PhotoSize, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services, translator_for
from bot.handlers.feedback import feedback_keyboard
from bot.services import jpeg_bytes
from model_training.classifier import Answer
from model_training.photos import Photo, PhotoError, decode_photo
from storage import add_photo, add_prediction, ensure_user, last_photo

log = logging.getLogger(__name__)
MB = 1024 * 1024


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
    if mentioned and target is not None and photo_file(target) is not None:
        await answer_photo(target, update, context)


async def not_a_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    t = await translator_for(update, context)
    await update.effective_message.reply_text(t(replies.NOT_A_PHOTO))


async def top5(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply /top5 to a photo to identify it; alone in a private chat, answer the last one again."""
    message = update.effective_message
    target = message.reply_to_message
    if target is not None and photo_file(target) is not None:
        await answer_photo(target, update, context)
    elif update.effective_chat.type == ChatType.PRIVATE:
        await repeat_last_answer(update, context)
    else:
        t = await translator_for(update, context)
        await message.reply_text(t(replies.REPLY_TOP5), do_quote=True)


async def answer_photo(photo: Message, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Download, identify, store and answer one photo message."""
    svc = services(context)
    user = update.effective_user
    t = await translator_for(update, context)
    if not await svc.allow_photo(user):
        await update.effective_message.reply_text(t(replies.RATE_LIMITED))
        return
    file_ref = photo_file(photo)
    limit = svc.settings.max_download_mb
    if file_ref is None or (file_ref.file_size or 0) > limit * MB:
        await photo.reply_text(t(replies.TOO_LARGE).format(mb=limit), do_quote=True)
        return
    # No "typing..." chat action: the answer comes within a fraction of a second, and every
    # request to a chat counts against Telegram's 30 messages/s, which would halve throughput.
    try:
        data = bytes(await (await file_ref.get_file()).download_as_bytearray())
        started = time.perf_counter()
        answer = await svc.identifier.identify(data)
        latency_ms = (time.perf_counter() - started) * 1000
    except BadRequest as err:  # Telegram refuses downloads beyond its limit
        log.info("download refused for chat %s: %s", photo.chat_id, err)
        await photo.reply_text(t(replies.TOO_LARGE).format(mb=limit), do_quote=True)
        return
    except PhotoError as err:
        await photo.reply_text(t(replies.BAD_IMAGE).format(reason=err), do_quote=True)
        return

    def store(session: Session) -> int:
        photo_id = _store_photo(session, user, photo, data, answer)
        return _store_prediction(session, photo_id, answer, latency_ms)

    prediction_id = await svc.db(store)
    await photo.reply_html(
        replies.top5_answer(answer.top5, answer.verdict, t=t),
        reply_markup=feedback_keyboard(prediction_id, answer.top5, t),
        do_quote=True,
    )


async def repeat_last_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The last photo answered again by the current model (it may have been retrained),
    stored as a prediction of its own so that its buttons record against this answer."""
    svc = services(context)
    user_id = update.effective_user.id
    t = await translator_for(update, context)
    stored = await svc.db(lambda s: last_photo(s, user_id))
    if stored is None:
        await update.effective_message.reply_text(t(replies.NO_LAST_PHOTO))
        return
    # The stored square, at the size the photo was sent: a small photo stays "too small".
    square = decode_photo(stored.image).image
    height, width = square.shape[:2]
    photo = Photo(square, stored.width or width, stored.height or height)
    started = time.perf_counter()
    answer = await svc.identifier.answer(photo)
    latency_ms = (time.perf_counter() - started) * 1000
    prediction_id = await svc.db(lambda s: _store_prediction(s, stored.id, answer, latency_ms))
    await update.effective_message.reply_html(
        replies.top5_answer(answer.top5, answer.verdict, t=t),
        reply_markup=feedback_keyboard(prediction_id, answer.top5, t),
    )


def photo_file(message: Message) -> PhotoSize | Document | None:
    if message.photo:
        return message.photo[-1]  # the largest size
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return document
    return None


def _store_photo(session: Session, user: User, photo: Message, data: bytes, answer: Answer) -> int:
    ensure_user(session, user.id, user.username, user.first_name)
    stored = add_photo(
        session,
        user_id=user.id,
        chat_id=photo.chat_id,
        message_id=photo.message_id,
        content_hash=hashlib.sha256(data).hexdigest(),
        image_jpeg=jpeg_bytes(answer.image),
        features=answer.features,
        size=answer.photo_size,
    )
    return stored.id


def _store_prediction(session: Session, photo_id: int, answer: Answer, latency_ms: float) -> int:
    prediction = add_prediction(
        session,
        photo_id,
        answer.model_version,
        [asdict(score) for score in answer.top5],
        latency_ms,
        verdict=answer.verdict.value,
    )
    return prediction.id
