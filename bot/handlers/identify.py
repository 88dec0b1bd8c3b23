"""Asking an identifier: "🔎 Ask an identifier" under an unsure answer queues its photo; /identify
hands identifiers (IDENTIFIER_IDS, the admins, optionally users whose labels agreed with enough
confirmed names) the waiting photo the model was least sure of, with its top-5 as buttons. When
identifiers agree the photographer is told, in a reply to their photo (docs/identifiers.md).

The queue lives in the database (storage/identifiers.py): every bot process shares it and a
restart loses nothing. A tap counts only from the identifier the photo is handed to, from the
message it was handed in (Telegram does not check callback data against the message's buttons),
once per photo; never on one's own photo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import callbacks, replies
from bot.callbacks import NEW, NOT_A_FLOWER, OTHER_SPECIES, SKIP
from bot.handlers import services, translator_for
from bot.handlers.naming import offer_names
from bot.i18n import Translator, translator
from storage import (
    IdentificationRequest,
    Name,
    NewSpecies,
    Outcome,
    QueueOrder,
    agreed_labels,
    ask,
    ask_identifiers,
    claim_next,
    claim_of,
    close_question,
    ensure_user,
    handed_as,
    held_by,
    new_species_by_key,
    pending_question,
    record_identification,
    waiting_for,
)

log = logging.getLogger(__name__)
# Least sure first: at the same budget of identifications, those photos taught the model more
# than photos taken at random (bench/active_learning.py, docs/identifiers.md).
QUEUE_ORDER = QueueOrder.LEAST_SURE
# "Another species": the identifier's typed name is a question in the database, as the
# photographer's is (bot/handlers/feedback.py), open as long as their claim.
NAME_QUESTION = "identifier_name"
QUESTION_EXPIRES = timedelta(minutes=30)
REFUSED = {
    Outcome.GONE: replies.PHOTO_WITHDRAWN,
    Outcome.NOT_HANDED: replies.NOT_THIS_ANSWER,
    Outcome.OWN_PHOTO: replies.OWN_PHOTO,
    Outcome.ALREADY_ANSWERED: replies.ALREADY_NAMED,
    Outcome.ALREADY_CONFIRMED: replies.ALREADY_NAMED,
}


async def ask_identifier(
    update: Update, context: ContextTypes.DEFAULT_TYPE, prediction_id: int, t: Translator
) -> None:
    """The photographer tapped "ask an identifier" under their answer (checked to be its own
    message by the caller): the photo joins the queue, and they are told who will see it."""
    query = update.callback_query
    user = update.effective_user

    def work(session: Session) -> IdentificationRequest | None:
        ensure_user(session, user.id, user.username, user.first_name)
        now = datetime.now(UTC)
        return ask_identifiers(session, prediction_id, user.id, t.language, now)

    request = await services(context).db(work)
    if request is None:
        await query.answer(t(replies.ONLY_THE_PHOTOGRAPHER), show_alert=True)
        return
    await query.answer()
    if request.confirmed_at is not None:  # asked again once named: the name again
        await query.message.reply_html(named(Name.of(request), t), do_quote=True)
        return
    await query.message.reply_text(t(replies.ASKED_IDENTIFIERS), do_quote=True)


async def may_identify(context: ContextTypes.DEFAULT_TYPE, user_id: int) -> bool:
    settings = services(context).settings
    if user_id in settings.identifier_ids or user_id in settings.admin_ids:
        return True
    if not settings.identifier_min_agreed:
        return False
    agreed = await services(context).db(lambda s: agreed_labels(s, user_id))
    return agreed >= settings.identifier_min_agreed


@dataclass(frozen=True)
class Handed:
    request_id: int
    jpeg: bytes
    top5: list[dict[str, Any]]
    waiting: int  # photos waiting for this identifier, this one included


async def identify_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/identify (private chats): the next waiting photo, with the model's top-5 as buttons."""
    user = update.effective_user
    t = await translator_for(update, context)
    if not await may_identify(context, user.id):
        await update.effective_message.reply_text(t(replies.NOT_IDENTIFIER))
        return

    def hand(session: Session) -> Handed | None:
        ensure_user(session, user.id, user.username, user.first_name)
        request = claim_next(session, user.id, datetime.now(UTC), QUEUE_ORDER)
        if request is None:
            return None
        waiting = waiting_for(session, user.id)
        return Handed(request.id, request.photo.image, request.prediction.top5, waiting)

    svc = services(context)
    handed = await svc.db(hand)
    if handed is None:
        await update.effective_message.reply_text(t(replies.NOTHING_WAITING))
        return
    sent = await update.effective_message.reply_photo(
        handed.jpeg,
        caption=t(replies.IDENTIFY_CAPTION).format(waiting=t.number(handed.waiting)),
        reply_markup=identify_keyboard(handed.request_id, handed.top5, t),
    )
    await svc.db(lambda s: handed_as(s, handed.request_id, user.id, sent.message_id))


def identify_keyboard(
    request_id: int, top5: list[dict[str, Any]], t: Translator
) -> InlineKeyboardMarkup:
    def button(text: str, choice: int | str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text, callback_data=callbacks.encode_identify(request_id, choice)
        )

    rows = [[button(t.species(s["species"]), s["index"])] for s in top5]
    rows.append(
        [button(t(replies.OTHER_SPECIES), OTHER_SPECIES), button(t("Not a flower"), NOT_A_FLOWER)]
    )
    rows.append([button(t(replies.SKIP), SKIP)])
    return InlineKeyboardMarkup(rows)


async def identify_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    tap = callbacks.parse_identify(query.data)
    user = update.effective_user
    t = await translator_for(update, context)
    message = query.message
    if not await may_identify(context, user.id):
        await query.answer(t(replies.NOT_IDENTIFIER), show_alert=True)
        return
    if message is None or message.chat.id != user.id:  # handed out in private chats only
        await query.answer(t(replies.NOT_THIS_ANSWER), show_alert=True)
        return
    if tap.choice == OTHER_SPECIES:
        await _ask_for_a_name(update, context, tap.request_id, t)
        return
    name = await _name_of(context, tap)
    if name is False:
        await query.answer(t(replies.NOT_THIS_ANSWER), show_alert=True)
        return
    await _record(update, context, tap.request_id, name, t)


async def _name_of(
    context: ContextTypes.DEFAULT_TYPE, tap: callbacks.IdentifyTap
) -> Name | bool | None:
    """What the tap names; None for a skip, False for a species that does not exist."""
    if tap.choice == SKIP:
        return None
    if tap.choice == NOT_A_FLOWER:
        return Name(not_a_flower=True)
    names = services(context).species
    if tap.species_index is not None:
        if tap.species_index >= len(names):
            return False
        return Name(tap.species_index, names[tap.species_index])

    def new(session: Session) -> Name | bool:
        species = session.get(NewSpecies, tap.new_species_id)
        if species is None:
            return False
        species = new_species_by_key(session, species.key)  # merged meanwhile: the one it joined
        return Name(new_species_id=species.id, species=species.name)

    return await services(context).db(new)


async def _ask_for_a_name(
    update: Update, context: ContextTypes.DEFAULT_TYPE, request_id: int, t: Translator
) -> None:
    query = update.callback_query
    user_id = update.effective_user.id
    message_id = query.message.message_id

    def work(session: Session) -> bool:
        request = held_by(session, request_id, user_id, message_id)
        if request is None:
            return False
        expires = datetime.now(UTC) + QUESTION_EXPIRES
        ask(session, user_id, NAME_QUESTION, request.prediction_id, expires)
        return True

    if not await services(context).db(work):
        await query.answer(t(replies.NOT_THIS_ANSWER), show_alert=True)
        return
    await query.answer()
    await query.message.reply_text(t(replies.ASK_NAME))


async def typed_name(update: Update, context: ContextTypes.DEFAULT_TYPE, t: Translator) -> None:
    """An identifier's typed name after "another species": matched as the photographer's would
    be; the buttons come in a new message, which then carries the claim."""
    svc = services(context)
    user_id = update.effective_user.id

    def moving(session: Session) -> int | None:
        request = claim_of(session, user_id)
        if request is None:
            close_question(session, user_id)
            return None
        handed_as(session, request.id, user_id, None)  # the buttons move to the offer
        return request.id

    request_id = await svc.db(moving)
    if request_id is None:
        await update.effective_message.reply_text(t(replies.NOTHING_HELD))
        return
    sent = await offer_names(
        update,
        context,
        t,
        known=lambda index: callbacks.encode_identify(request_id, index),
        new=lambda species_id: callbacks.encode_identify(request_id, f"{NEW}{species_id}"),
    )
    if sent is not None:
        await svc.db(lambda s: handed_as(s, request_id, user_id, sent.message_id))


@dataclass(frozen=True)
class Confirmed:
    """What the photographer is told: where their photo is, in their language."""

    chat_id: int
    message_id: int
    language: str
    name: Name


async def _record(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    request_id: int,
    name: Name | None,
    t: Translator,
) -> None:
    query = update.callback_query
    user = update.effective_user
    message_id = query.message.message_id
    settings = services(context).settings
    alone = settings.identifier_alone_confirms and user.id in settings.identifier_ids

    def work(session: Session) -> tuple[Outcome, Confirmed | None, int]:
        ensure_user(session, user.id, user.username, user.first_name)
        now = datetime.now(UTC)
        result = record_identification(session, request_id, user.id, message_id, name, now, alone)
        question = pending_question(session, user.id, now)
        if question is not None and question.kind == NAME_QUESTION:  # answered by a button
            close_question(session, user.id)
        confirmed = None
        if result.outcome == Outcome.CONFIRMED and result.request is not None:
            photo = result.request.photo
            confirmed = Confirmed(photo.chat_id, photo.message_id, result.request.language, name)
        return result.outcome, confirmed, waiting_for(session, user.id)

    outcome, confirmed, waiting = await services(context).db(work)
    if outcome in REFUSED:
        log.info("identification refused: user %s, data %r, %s", user.id, query.data, outcome)
        await query.answer(t(REFUSED[outcome]), show_alert=True)
        return
    await query.answer(t(replies.THANKS_SHORT))
    await query.edit_message_reply_markup(None)  # answered: its buttons go
    if name is None:
        done = t(replies.SKIPPED)
    else:
        done = t(replies.THANKS).format(what=_said(name, t, html=False))
    more = t(replies.MORE_WAITING).format(waiting=t.number(waiting)) if waiting else ""
    await query.message.reply_text(f"{done} {more}".strip())
    if confirmed is not None:
        await tell_photographer(context, confirmed)


def _said(name: Name, t: Translator, html: bool) -> str:
    if name.not_a_flower:
        return t("not a flower")
    if name.species_index is not None:
        return (
            replies.species_link(name.species or "", t) if html else t.species(name.species or "")
        )
    new = name.species or ""  # a new species: its name as users typed it
    return escape(new) if html else new


def named(name: Name, t: Translator) -> str:
    """HTML: what identifiers named a photo, for its photographer."""
    if name.not_a_flower:
        return t(replies.NAMED_NOT_A_FLOWER)
    return t(replies.NAMED_BY_IDENTIFIERS).format(name=_said(name, t, html=True))


async def tell_photographer(context: ContextTypes.DEFAULT_TYPE, confirmed: Confirmed) -> None:
    """The confirmed name, as a reply to the photo it names (if the photographer deleted that
    message, on its own)."""
    text = named(confirmed.name, translator(confirmed.language))
    reply = ReplyParameters(confirmed.message_id, allow_sending_without_reply=True)
    try:
        await context.bot.send_message(
            confirmed.chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=reply
        )
    except TelegramError:  # e.g. they blocked the bot: the name is stored all the same
        log.warning("could not tell chat %s its photo's name", confirmed.chat_id, exc_info=True)
