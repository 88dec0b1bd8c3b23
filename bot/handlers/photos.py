"""Photos in, answers out: private photos, groups (/top5, captions, mentions), and /top5 again.

Every answer sent with feedback buttons is stored first as its own prediction, and the buttons
name that prediction: a tap always belongs to the answer the user saw.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import albums, services, translator_for, user_translator
from bot.handlers.answering import (
    answer_identified,
    answer_stored,
    identify_message,
    photo_file,
    remember_answer,
    store_prediction,
)
from bot.handlers.feedback import (
    SECOND_PHOTO_QUESTION,
    feedback_keyboard,
    offers_identifiers,
    offers_second_photo,
)
from bot.i18n import Translator
from bot.overload import Mode
from bot.services import Admission
from storage import last_photo


async def private_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo alone; one of an album; or the second photo of a plant the user asked to add."""
    message = update.effective_message
    if message.media_group_id:  # one photo of an album: answered with the others
        await albums.collect(message, update, context, wanted=True)
        return
    admission = await services(context).admit_photo(update.effective_user, SECOND_PHOTO_QUESTION)
    asked = admission.asked
    if asked is None:
        await answer_photo(message, update, context, admission=admission)
    elif asked.expires_at <= datetime.now(UTC):
        expired = replies.SECOND_PHOTO_EXPIRED
        await answer_photo(message, update, context, header=expired, admission=admission)
    elif not await albums.answer_second_photo(message, update, context, asked, admission):
        await answer_photo(message, update, context, admission=admission)


async def group_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In groups only photos captioned /top5 or mentioning the bot are answered (for an album,
    the caption of any of its photos)."""
    message = update.effective_message
    caption = message.caption or ""
    wanted = caption.startswith("/top5") or f"@{context.bot.username}".lower() in caption.lower()
    if message.media_group_id:
        await albums.collect(message, update, context, wanted)
    elif wanted:
        await answer_photo(message, update, context)


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
    """Reply /top5 to a photo to identify it (to a photo of an album: the whole album); alone in
    a private chat, answer the last one again."""
    message = update.effective_message
    target = message.reply_to_message
    if target is not None and photo_file(target) is not None:
        if not (target.media_group_id and await albums.answer_album_again(target, update, context)):
            await answer_photo(target, update, context)
    elif update.effective_chat.type == ChatType.PRIVATE:
        await repeat_last_answer(update, context)
    else:
        t = await translator_for(update, context)
        await message.reply_text(t(replies.REPLY_TOP5), do_quote=True)


async def answer_photo(
    photo: Message,
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    header: str | None = None,
    admission: Admission | None = None,
) -> None:
    """Download, identify, store and answer one photo message; `header` (a message id) goes
    above the answer; `admission`: the photo's place against the user's limit, when the caller
    took it already."""
    svc = services(context)
    user = update.effective_user
    if admission is None:
        admission = await svc.admit_photo(user)
    t = user_translator(user, admission.language)
    mode = svc.backlog.arrive(svc.identifier.classifier.has_one_view, svc.limiter.room_to_reply())
    if mode == Mode.NEXT_IN_LINE and admission.allowed:
        told = asyncio.Event()

        async def in_turn() -> None:
            # Its turn may come while the reply still waits in the rate limiter: the answer
            # never goes out before "next in line" (sent or failed).
            await told.wait()
            try:
                await answer_in_turn(photo, update, context, header, admission, t, mode)
            except Exception as err:  # as PTB does for a handler: logged, an apology
                await context.application.process_error(update, err)

        svc.next_in_line.park(in_turn)  # first: the photo keeps its turn whatever comes next
        try:
            await photo.reply_text(t(replies.NEXT_IN_LINE), do_quote=True)
        finally:
            told.set()
        return
    await answer_in_turn(photo, update, context, header, admission, t, mode)


async def answer_in_turn(
    photo: Message,
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    header: str | None,
    admission: Admission,
    t: Translator,
    mode: Mode,
) -> None:
    """answer_photo's work once the photo is counted in the backlog (and out once answered):
    under overload, the one-view answer."""
    svc = services(context)
    try:
        one_view = mode != Mode.FOUR_VIEWS
        result = await identify_message(photo, admission, context, one_view=one_view)
        if isinstance(result, replies.Refusal):
            text = replies.refusal(result, svc.settings.max_download_mb, t)
            if result.why == replies.Refused.RATE_LIMITED:
                await update.effective_message.reply_text(text)
            else:
                await photo.reply_text(text, do_quote=True)
            return
        await answer_identified(svc, update.effective_user, result, t, header=header)
    finally:
        svc.backlog.answered()


async def repeat_last_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The last photo answered again, stored as a prediction of its own so that its buttons
    record against this answer."""
    svc = services(context)
    user_id = update.effective_user.id
    t = await translator_for(update, context)
    stored = await svc.db(lambda s: last_photo(s, user_id))
    if stored is None:
        await update.effective_message.reply_text(t(replies.NO_LAST_PHOTO))
        return
    started = time.perf_counter()
    answer = await answer_stored(context, stored)
    latency_ms = (time.perf_counter() - started) * 1000
    prediction_id = await svc.db(lambda s: store_prediction(s, stored.id, answer, latency_ms))
    # The photo may have been sent in a group: a second photo is asked only for private ones.
    second_photo = offers_second_photo(answer.verdict, stored.chat_id == user_id)
    sent = await update.effective_message.reply_html(
        replies.top5_answer(answer.top5, answer.verdict, t=t),
        reply_markup=feedback_keyboard(
            prediction_id,
            answer.top5,
            t,
            second_photo=second_photo,
            ask_identifiers=offers_identifiers(svc.settings, answer.verdict),
        ),
    )
    await remember_answer(svc, prediction_id, sent)
