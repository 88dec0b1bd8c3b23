"""Albums: photos sent together (one media_group_id) show one plant and get one answer.

Telegram delivers an album as separate messages a few milliseconds apart, and none of them says
it is the last. Each one (re)starts a short JobQueue timer; once ALBUM_WAIT_SECONDS pass with no
new photo, the album is identified and answered. No handler sleeps.

The album is kept in this process's memory while it is collected (a second or so). Behind a
load balancer that spreads one album over two processes, each would answer its part.

A photo sent after "Add a photo of the same plant" (bot/handlers/feedback.py) is answered here
too, with the earlier photo, as an album of two (answer_second_photo).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field

from sqlalchemy.orm import Session
from telegram import Message, Update, User
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services, translator_for, user_translator
from bot.handlers.answering import (
    Identified,
    answer_stored,
    identify_message,
    remember_answer,
    store_answer,
    store_prediction,
)
from bot.handlers.feedback import feedback_keyboard
from bot.i18n import Translator
from bot.services import Admission
from model_training.albums import AlbumAnswer, album_answer
from storage import PendingQuestion, add_album, ask, latest_album, prediction_by_id
from storage import Photo as StoredPhoto

log = logging.getLogger(__name__)
COLLECTING = "albums"  # bot_data key: the albums being collected, by job name


@dataclass
class CollectedAlbum:
    user: User
    t: Translator  # the user's language, read when the first photo came in
    messages: list[Message] = field(default_factory=list)
    # Private chats: always. Groups: when a photo's caption asks (/top5 or a mention), which
    # Telegram puts on the first photo only.
    wanted: bool = False
    last_photo_at: float = 0.0  # perf_counter() when the latest photo came in


async def collect(
    message: Message, update: Update, context: ContextTypes.DEFAULT_TYPE, wanted: bool
) -> None:
    """Add a photo to its album and restart the album's timer."""
    name = f"album:{message.chat_id}:{message.media_group_id}"
    t = await translator_for(update, context)
    # From here on nothing awaits: photos of one album handled concurrently cannot interleave.
    collecting = context.bot_data.setdefault(COLLECTING, {})
    album = collecting.setdefault(name, CollectedAlbum(update.effective_user, t))
    album.messages.append(message)
    album.wanted |= wanted
    album.last_photo_at = time.perf_counter()
    for job in context.job_queue.get_jobs_by_name(name):
        job.schedule_removal()
    wait = services(context).settings.album_wait_seconds
    context.job_queue.run_once(answer_collected, wait, data=name, name=name)


async def answer_collected(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The timer ran out: the album is complete."""
    album = context.bot_data.get(COLLECTING, {}).pop(context.job.data, None)
    if album is None or not album.wanted:
        return
    messages = sorted(album.messages, key=lambda m: m.message_id)
    try:
        await answer_album(messages, album.user, album.t, context, album.last_photo_at)
    except Exception:  # a job has no update for the error handler to apologise on
        log.exception("album %s failed", context.job.data)
        await messages[0].reply_text(album.t(replies.APOLOGY))


async def answer_album(
    messages: list[Message],
    user: User,
    t: Translator,
    context: ContextTypes.DEFAULT_TYPE,
    started: float,
) -> None:
    """Identify every photo (they share the batcher's next model call), combine those that look
    like a flower, store each photo's own prediction and the album's, answer once."""
    svc = services(context)

    async def admitted_and_identified(message: Message) -> Identified | replies.Refusal:
        return await identify_message(message, await svc.admit_photo(user), context)

    results = await asyncio.gather(*(admitted_and_identified(m) for m in messages))
    identified = [r for r in results if isinstance(r, Identified)]
    if not identified:  # nothing to combine: say why for the first photo, as for one photo
        refused = next(r for r in results if isinstance(r, replies.Refusal))
        await messages[0].reply_text(
            replies.refusal(refused, svc.settings.max_download_mb, t), do_quote=True
        )
        return
    combined = album_answer(svc.identifier.classifier, [r.answer for r in identified])
    left_out = left_out_photos(results, combined)
    latency_ms = (time.perf_counter() - started) * 1000

    def store(session: Session) -> int:
        ids = [store_answer(session, user, r) for r in identified]
        _store_album(session, messages[0], user, combined, left_out, latency_ms, ids)
        return ids[combined.used[0]]  # the buttons name the album through this prediction

    prediction_id = await svc.db(store)
    await _reply(context, messages[0], prediction_id, combined, left_out, t)


async def answer_album_again(
    target: Message, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> bool:
    """/top5 in reply to any photo of an answered album: the whole album, by the current model.
    False when the bot never answered that album (then the photo is answered alone)."""
    svc = services(context)
    chat_id, group_id = target.chat_id, target.media_group_id

    def stored_album(session: Session) -> tuple[list[StoredPhoto], list[dict]] | None:
        album = latest_album(session, chat_id, group_id)
        if album is None:
            return None
        predictions = sorted(album.predictions, key=lambda p: p.id)
        photos = [p.photo for p in predictions]
        # Photos never stored (unreadable, too large, over the limit) stay left out; the stored
        # ones, "not a flower" included, are looked at again.
        unread = [i for i in album.left_out if i["reason"] != replies.NOT_A_FLOWER_PHOTO]
        return photos, unread

    found = await svc.db(stored_album)
    if found is None:
        return False
    photos, unread = found
    started = time.perf_counter()
    answers = await asyncio.gather(*(answer_stored(context, photo) for photo in photos))
    combined = album_answer(svc.identifier.classifier, answers)
    # The stored photos fill the album's places that the unreadable ones leave free.
    taken = {item["position"] for item in unread}
    places = [p for p in range(1, len(photos) + len(unread) + 1) if p not in taken]
    not_flowers = [
        {"position": places[i], "reason": replies.NOT_A_FLOWER_PHOTO} for i in combined.not_flowers
    ]
    left_out = sorted(unread + not_flowers, key=lambda item: item["position"])
    latency_ms = (time.perf_counter() - started) * 1000

    def store(session: Session) -> int:
        ids = [
            store_prediction(session, photo.id, answer, latency_ms)
            for photo, answer in zip(photos, answers, strict=True)
        ]
        _store_album(session, target, update.effective_user, combined, left_out, latency_ms, ids)
        return ids[combined.used[0]]

    prediction_id = await svc.db(store)
    t = await translator_for(update, context)
    await _reply(context, update.effective_message, prediction_id, combined, left_out, t)
    return True


async def answer_second_photo(
    message: Message,
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    asked: PendingQuestion,
    admission: Admission,
) -> bool:
    """A photo sent after "Add a photo of the same plant" (the question `asked`, taken): with the
    photo of the answer that offered it, by the album rule, one answer for both, stored as an
    album of two (the first photo answered again by the current model, as /top5 does); the
    photo took its place against the user's limit already (`admission`). False when the first
    photo is gone (/forget): then this one is answered alone."""
    svc = services(context)
    user = update.effective_user

    def first_photo(session: Session) -> StoredPhoto | None:
        prediction = prediction_by_id(session, asked.prediction_id)
        return None if prediction is None else prediction.photo

    first = await svc.db(first_photo)
    if first is None:
        return False
    started = time.perf_counter()
    t = user_translator(user, admission.language)
    # Both through the batcher at once: they share its next model call.
    second, first_answer = await asyncio.gather(
        identify_message(message, admission, context), answer_stored(context, first)
    )
    if isinstance(second, replies.Refusal):
        # Nothing to combine: say why, and keep waiting for a photo until the same time.
        await svc.db(lambda s: ask(s, user.id, asked.kind, asked.prediction_id, asked.expires_at))
        text = replies.refusal(second, svc.settings.max_download_mb, t)
        await message.reply_text(f"{text}\n{t(replies.SECOND_PHOTO_STILL_WAITING)}", do_quote=True)
        return True
    combined = album_answer(svc.identifier.classifier, [first_answer, second.answer])
    left_out = [
        {"position": i + 1, "reason": replies.NOT_A_FLOWER_PHOTO} for i in combined.not_flowers
    ]
    latency_ms = (time.perf_counter() - started) * 1000

    def store(session: Session) -> int:
        ids = [
            store_prediction(session, first.id, first_answer, latency_ms),
            store_answer(session, user, second),
        ]
        _store_album(session, message, user, combined, left_out, latency_ms, ids)
        return ids[combined.used[0]]

    prediction_id = await svc.db(store)
    await _reply(context, message, prediction_id, combined, left_out, t)
    return True


def left_out_photos(
    results: list[Identified | replies.Refusal], combined: AlbumAnswer
) -> list[dict[str, object]]:
    """[{"position": 1-based place in the album, "reason": ...}] for every photo not combined."""
    identified_positions = [i for i, r in enumerate(results) if isinstance(r, Identified)]
    not_flowers = {identified_positions[i] for i in combined.not_flowers}
    left_out = []
    for position, result in enumerate(results):
        if isinstance(result, replies.Refusal):
            left_out.append({"position": position + 1, "reason": result.why.value})
        elif position in not_flowers:
            left_out.append({"position": position + 1, "reason": replies.NOT_A_FLOWER_PHOTO})
    return left_out


def _store_album(
    session: Session,
    first: Message,
    user: User,
    combined: AlbumAnswer,
    left_out: list[dict],
    latency_ms: float,
    prediction_ids: list[int],
) -> None:
    add_album(
        session,
        user_id=user.id,
        chat_id=first.chat_id,
        media_group_id=first.media_group_id or "",
        model_version=combined.model_version,
        top5=[asdict(score) for score in combined.top5],
        verdict=combined.verdict.value,
        left_out=left_out,
        latency_ms=latency_ms,
        prediction_ids=prediction_ids,
    )


async def _reply(
    context: ContextTypes.DEFAULT_TYPE,
    to: Message,
    prediction_id: int,
    combined: AlbumAnswer,
    left_out: list[dict],
    t: Translator,
) -> None:
    header = replies.album_header(len(combined.used), left_out, t)
    sent = await to.reply_html(
        replies.top5_answer(combined.top5, combined.verdict, header=header, t=t),
        reply_markup=feedback_keyboard(prediction_id, combined.top5, t),
        do_quote=True,
    )
    await remember_answer(services(context), prediction_id, sent)
