"""The steps every photo answer shares: rate limit, download, identify, store.

Single photos (bot/handlers/photos.py), albums (bot/handlers/albums.py) and photos sent from
the camera page inside Telegram (bot/webapp.py) go through them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy.orm import Session
from telegram import Document, Message, PhotoSize, User
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services
from bot.handlers.feedback import feedback_keyboard, offers_identifiers, offers_second_photo
from bot.i18n import Translator
from bot.services import Admission, Services, jpeg_bytes
from model_training.classifier import Answer
from model_training.photos import Photo, PhotoError, decode_photo
from storage import Photo as StoredPhoto
from storage import add_photo, add_prediction, answer_sent_as, ensure_user

log = logging.getLogger(__name__)
MB = 1024 * 1024


@dataclass(frozen=True)
class Identified:
    """A photo message downloaded and answered, not yet stored."""

    message: Message
    data: bytes
    answer: Answer
    latency_ms: float


async def identify_message(
    photo: Message,
    admission: Admission,
    context: ContextTypes.DEFAULT_TYPE,
    one_view: bool = False,
) -> Identified | replies.Refusal:
    """Download and identify one photo message that took its place against the user's limit
    (Services.admit_photo): its answer (`one_view`: the one-view answer, under overload), or
    why there is none."""
    svc = services(context)
    if not admission.allowed:
        return replies.Refusal(replies.Refused.RATE_LIMITED)
    file_ref = photo_file(photo)
    if file_ref is None or (file_ref.file_size or 0) > svc.settings.max_download_mb * MB:
        return replies.Refusal(replies.Refused.TOO_LARGE)
    # No "typing..." chat action: the answer comes within a fraction of a second, and every
    # request to a chat counts against Telegram's 30 messages/s, which would halve throughput.
    try:
        data = bytes(await (await file_ref.get_file()).download_as_bytearray())
    except BadRequest as err:  # Telegram refuses downloads beyond its limit
        log.info("download refused for chat %s: %s", photo.chat_id, err)
        return replies.Refusal(replies.Refused.TOO_LARGE)
    identified = await identify_bytes(svc, data, one_view)
    if isinstance(identified, replies.Refusal):
        return identified
    answer, latency_ms = identified
    return Identified(photo, data, answer, latency_ms)


async def identify_bytes(
    svc: Services, data: bytes, one_view: bool = False
) -> tuple[Answer, float] | replies.Refusal:
    """A photo's bytes identified by the served model (`one_view`: the one-view answer), with
    the milliseconds it took, or why not: the step a chat photo and one from the camera page
    (bot/webapp.py) share."""
    started = time.perf_counter()
    try:
        answer = await svc.identifier.identify(data, one_view)
    except PhotoError as err:
        return replies.Refusal(replies.Refused.UNREADABLE, str(err))
    return answer, (time.perf_counter() - started) * 1000


async def answer_stored(context: ContextTypes.DEFAULT_TYPE, stored: StoredPhoto) -> Answer:
    """A stored photo answered again by the current model (it may have been retrained), from
    the stored square at the size the photo was sent: a small photo stays "too small"."""
    square = decode_photo(stored.image).image
    height, width = square.shape[:2]
    photo = Photo(square, stored.width or width, stored.height or height)
    return await services(context).identifier.answer(photo)


def photo_file(message: Message) -> PhotoSize | Document | None:
    if message.photo:
        return message.photo[-1]  # the largest size
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return document
    return None


def store_answer(session: Session, user: User, identified: Identified) -> int:
    """The photo (its square and features) and its prediction: the prediction's id."""
    photo, answer = identified.message, identified.answer
    ensure_user(session, user.id, user.username, user.first_name)
    stored = add_photo(
        session,
        user_id=user.id,
        chat_id=photo.chat_id,
        message_id=photo.message_id,
        content_hash=hashlib.sha256(identified.data).hexdigest(),
        image_jpeg=jpeg_bytes(answer.image),
        features=answer.features,
        size=answer.photo_size,
    )
    return store_prediction(session, stored.id, answer, identified.latency_ms)


def store_prediction(session: Session, photo_id: int, answer: Answer, latency_ms: float) -> int:
    prediction = add_prediction(
        session,
        photo_id,
        answer.model_version,
        [asdict(score) for score in answer.top5],
        latency_ms,
        verdict=answer.verdict.value,
    )
    return prediction.id


async def answer_identified(
    svc: Services,
    user: User,
    identified: Identified,
    t: Translator,
    header: str | None = None,
    also_store: Callable[[Session, int], None] | None = None,
) -> int:
    """Store an identified photo and its prediction, then answer under the photo with the
    feedback buttons: the prediction's id. `header` (a message id) goes above the answer;
    `also_store(session, prediction_id)` runs in the same transaction (the camera page's send,
    stored with its photo or not at all). An unsure answer in the user's own chat (a chat
    photo or the camera page's copy of one) offers a second photo and, where there are
    identifiers, to ask one."""

    def store(session: Session) -> int:
        prediction_id = store_answer(session, user, identified)
        if also_store is not None:
            also_store(session, prediction_id)
        return prediction_id

    prediction_id = await svc.db(store)
    answer = identified.answer
    private = identified.message.chat_id == user.id
    sent = await identified.message.reply_html(
        replies.top5_answer(answer.top5, answer.verdict, header=t(header) if header else None, t=t),
        reply_markup=feedback_keyboard(
            prediction_id,
            answer.top5,
            t,
            second_photo=offers_second_photo(answer.verdict, private),
            ask_identifiers=offers_identifiers(svc.settings, answer.verdict),
        ),
        do_quote=True,
    )
    await remember_answer(svc, prediction_id, sent)
    return prediction_id


async def remember_answer(svc: Services, prediction_id: int, sent: Message) -> None:
    """The message an answer with buttons went out as: its buttons count only there."""
    chat_id, message_id = sent.chat_id, sent.message_id
    await svc.db(lambda s: answer_sent_as(s, prediction_id, chat_id, message_id))
