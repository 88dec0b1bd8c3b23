"""POST /webapp/photo: a photo sent from the camera page opened inside Telegram (a Mini App).

Multipart form fields: `init_data` (Telegram.WebApp.initData, as the page received it), `photo`
(the JPEG the page identified), `answer` (the page's answer as JSON: model_version, verdict, top5
of {index, confidence}) and `key` (the page's idempotency key for this photo). The photo then
goes the way of a photo sent in the chat (bot/handlers/answering.py: the same limits, the served
model, storage, the answer with its feedback buttons), under a copy of it the bot sends to the
user's chat, so taps, /top5, /forget and retraining take it like any other.

Served by the health server's tornado app (bot/health.py), in the bot's event loop, with the
bot's own Bot to send with.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import tornado.web
from telegram import Bot, User
from telegram.error import BadRequest, Forbidden

from bot import replies
from bot.handlers import user_translator
from bot.handlers.answering import Identified, answer_identified, identify_bytes
from bot.initdata import InitDataError, validated_user
from bot.services import Services, jpeg_bytes
from model_training.classifier import Answer
from storage import claim_send, release_send, send_stored, sent_prediction

log = logging.getLogger(__name__)
MB = 1024 * 1024
# The page makes one per photo (crypto.randomUUID()); anything else is refused.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The page's probabilities and the server's differ by at most this on the same photo and model:
# what the web export is held to (tests/test_web.py's TOLERANCE, docs/web.md).
PAGE_TOLERANCE = 0.01
NOT_FROM_TELEGRAM = "Open this page from the bot in Telegram to send photos to it."
BAD_FORM = "The page sent an incomplete form: reload it and try again."
BEING_ANSWERED = "This photo is being answered right now."
UNEXPECTED = "Something went wrong on the bot's side: try again in a minute."
CHAT_CLOSED = "Start a chat with the bot in Telegram first (/start), then send the photo again."


class WebAppPhotoHandler(tornado.web.RequestHandler):
    def initialize(self, svc: Services, bot: Bot) -> None:
        self.svc, self.bot = svc, bot

    def check_xsrf_cookie(self) -> None:
        """The signed init data proves who sends, not a cookie (the app sets no xsrf_cookies;
        said here so that turning them on later does not break the page)."""

    async def post(self) -> None:
        settings = self.svc.settings
        try:
            signed = validated_user(
                self.get_body_argument("init_data", ""),
                settings.telegram_bot_token.get_secret_value(),
                timedelta(seconds=settings.webapp_max_age_seconds),
                datetime.now(UTC),
            )
        except InitDataError as err:
            log.info("camera page photo refused (401): %s", err)
            return self.reply(401, error=NOT_FROM_TELEGRAM)
        user = User(
            signed.id,
            signed.first_name,
            is_bot=False,
            username=signed.username,
            language_code=signed.language_code,
        )
        key = self.get_body_argument("key", "")
        page = page_answer(self.get_body_argument("answer", ""))
        photos = self.request.files.get("photo", [])
        if not KEY_PATTERN.fullmatch(key) or page is None or len(photos) != 1:
            return self.reply(400, error=BAD_FORM)
        names = (user.username, user.first_name)
        send_id = await self.svc.db(
            lambda s: claim_send(s, user.id, names, key, page["top5"], page["verdict"])
        )
        if send_id is None:  # sent before (a retry, or the offline queue sending again)
            prediction_id = await self.svc.db(lambda s: sent_prediction(s, user.id, key))
            if prediction_id is None:
                return self.reply(409, error=BEING_ANSWERED)
            return self.reply(200, status="answered", duplicate=True)
        code, body = 500, {}  # kept if answer() raises: tornado answers 500 (write_error)
        try:
            code, body = await self.answer(user, photos[0].body, page, send_id)
        finally:
            # Refused or failed: the key is free again unless it was stored, before the page
            # hears back, so that the page's next try finds it free.
            if code != 200:
                await self.svc.db(lambda s: release_send(s, send_id))
        self.reply(code, **body)

    async def answer(
        self, user: User, data: bytes, page: dict[str, Any], send_id: int
    ) -> tuple[int, dict[str, object]]:
        """The photo identified, stored and answered in the user's chat (200), or the status and
        the reason why not, for the page."""
        admission = await self.svc.admit_photo(user)
        t = user_translator(user, admission.language)
        max_mb = self.svc.settings.max_download_mb
        refusal = None
        if not admission.allowed:
            refusal = replies.Refusal(replies.Refused.RATE_LIMITED)
        elif len(data) > max_mb * MB:
            refusal = replies.Refusal(replies.Refused.TOO_LARGE)
        if refusal is None:
            # The copy in the chat is sent once the photo is known to be readable. Never the
            # one-view answer nor "next in line", as albums (docs/production.md 'Under overload').
            identified = await identify_bytes(self.svc, data)
            if isinstance(identified, replies.Refusal):
                refusal = identified
        if refusal is not None:
            status = {replies.Refused.RATE_LIMITED: 429, replies.Refused.TOO_LARGE: 413}
            return status.get(refusal.why, 422), {"error": replies.refusal(refusal, max_mb, t)}
        answer, latency_ms = identified
        compare_with_page(answer, page, user.id)
        try:
            # What the model saw (the stored square), for the answer to stand under in the chat.
            sent = await self.bot.send_photo(user.id, jpeg_bytes(answer.image))
        except (Forbidden, BadRequest) as err:  # the user never started the bot, or blocked it
            log.info("camera page photo of user %s not answered: %s", user.id, err)
            return 403, {"error": CHAT_CLOSED}
        await answer_identified(
            self.svc,
            user,
            Identified(sent, data, answer, latency_ms),
            t,
            also_store=lambda session, prediction_id: send_stored(session, send_id, prediction_id),
        )
        return 200, {"status": "answered", "duplicate": False, "verdict": answer.verdict.value}

    def reply(self, code: int, **body: object) -> None:
        self.set_status(code)
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's answer to an unexpected error (logged with its traceback), in the page's
        JSON rather than HTML."""
        self.finish({"error": UNEXPECTED})


def page_answer(text: str) -> dict[str, Any] | None:
    """The page's answer ({model_version, verdict, top5: [{index, confidence}]}), or None."""
    try:
        answer = json.loads(text)
        top5 = [
            {"index": int(item["index"]), "confidence": float(item["confidence"])}
            for item in answer["top5"]
        ]
        verdict = answer.get("verdict")
        version = answer.get("model_version")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not top5 or not isinstance(verdict, str | None) or not isinstance(version, str | None):
        return None
    return {"top5": top5[:5], "verdict": verdict, "model_version": version}


def compare_with_page(answer: Answer, page: dict[str, Any], user_id: int) -> None:
    """Logs where the page's answer and the server's disagree beyond PAGE_TOLERANCE: the
    server's is the one stored and answered; the page's is kept beside it."""
    if page["model_version"] not in (None, answer.model_version):
        log.info(
            "camera page of user %s runs %s, the bot %s: answers not compared",
            user_id,
            page["model_version"],
            answer.model_version,
        )
        return
    server = {score.index: score.confidence for score in answer.top5}
    page_scores = {item["index"]: item["confidence"] for item in page["top5"]}
    gaps = [abs(page_scores[i] - p) for i, p in server.items() if i in page_scores]
    same_top1 = answer.top5[0].index == page["top5"][0]["index"]
    if not same_top1 or max(gaps, default=1.0) > PAGE_TOLERANCE:
        log.warning(
            "camera page and bot disagree for user %s: page top-1 %d, bot top-1 %d, "
            "largest gap %.4f (tolerance %.2f)",
            user_id,
            page["top5"][0]["index"],
            answer.top5[0].index,
            max(gaps, default=1.0),
            PAGE_TOLERANCE,
        )
