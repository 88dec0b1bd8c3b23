"""Feedback: the buttons under an answer, "None of these" and a typed name, "Not a flower", and
under an unsure answer "Add a photo of the same plant" and "Ask an identifier".

Each button names the prediction it sits under (bot/callbacks.py); the feedback row points at
that prediction, so /stats credits the model version that gave the answer the user saw.
Telegram does not check a button's data against the message it comes from, so a tap counts only
from the answer message stored with its prediction (anyone in a group may label the group's
photos there), and the typed-name and new-species buttons only in the private chat of a user who
tapped "None of these" under that answer. Under an unsure answer, "Ask an identifier" hands the
photo to bot/handlers/identify.py; once identifiers confirmed a name, a tap naming anything else
records nothing (Settled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import callbacks, replies
from bot.callbacks import ASK_IDENTIFIERS, NONE_OF_THESE, NOT_A_FLOWER, SECOND_PHOTO, Source
from bot.config import Settings
from bot.handlers import identify, services, translator_for
from bot.handlers.identify import ask_identifier
from bot.handlers.naming import offer_names
from bot.i18n import ENGLISH, Translator
from model_training.abstention import Verdict
from model_training.classifier import SpeciesScore
from storage import (
    Name,
    NewSpecies,
    Prediction,
    album_of,
    allow_naming,
    answered_together,
    approve_when_enough,
    ask,
    close_question,
    confirmed_name,
    ensure_user,
    may_name,
    new_species_by_key,
    pending_question,
    prediction_by_id,
    record_feedback,
    tapped_on_its_answer,
)

log = logging.getLogger(__name__)
# "Type the name" after "None of these" is a question stored in the database (storage/state.py),
# not PTB's user_data or a ConversationHandler: PTB's persistence loads a process's conversations
# once at start and flushes them later, so a second bot process behind the same webhook would
# neither see nor keep the other's questions. An hour is long enough to find a name.
NAME_QUESTION = "species_name"
QUESTION_EXPIRES = timedelta(hours=1)
# After "Add a photo of the same plant" the user's next photo is combined with the first. Ten
# minutes to walk up to the plant and take another; a photo sent later is answered alone (it may
# well be another plant by then), and says so.
SECOND_PHOTO_QUESTION = "second_photo"
SECOND_PHOTO_EXPIRES = timedelta(minutes=10)
# The verdicts a second photo or an identifier may settle: "too small" asks for a larger photo
# already, and "not a flower" for a flower; a sure answer needs neither.
UNSURE_VERDICTS = frozenset({Verdict.NOT_SURE, Verdict.UNKNOWN_SPECIES})


def offers_second_photo(verdict: Verdict, private: bool) -> bool:
    """Whether a single photo's answer offers "Add a photo of the same plant": unsure, in the
    photographer's private chat (in groups the bot answers only photos it is asked about)."""
    return private and verdict in UNSURE_VERDICTS


def feedback_keyboard(
    prediction_id: int,
    top5: list[SpeciesScore],
    t: Translator = ENGLISH,
    second_photo: bool = False,
    ask_identifiers: bool = False,
) -> InlineKeyboardMarkup:
    """One button per proposed species, then "none of these" and "not a flower"; under an
    unsure answer of a single photo, with `second_photo` (offers_second_photo), "Add a photo of
    the same plant", and with `ask_identifiers` (offers_identifiers), "Ask an identifier", each
    in a row of its own."""
    rows = [
        [
            InlineKeyboardButton(
                t.species(s.species),
                callback_data=callbacks.encode(Source.ANSWER, prediction_id, s.index),
            )
        ]
        for s in top5
    ]
    rows.append(
        [
            InlineKeyboardButton(
                t("None of these"),
                callback_data=callbacks.encode(Source.ANSWER, prediction_id, NONE_OF_THESE),
            ),
            InlineKeyboardButton(
                t("Not a flower"),
                callback_data=callbacks.encode(Source.ANSWER, prediction_id, NOT_A_FLOWER),
            ),
        ]
    )
    if second_photo:
        callback_data = callbacks.encode(Source.ANSWER, prediction_id, SECOND_PHOTO)
        rows.append(
            [InlineKeyboardButton(t(replies.SECOND_PHOTO_BUTTON), callback_data=callback_data)]
        )
    if ask_identifiers:
        data = callbacks.encode(Source.ANSWER, prediction_id, ASK_IDENTIFIERS)
        rows.append([InlineKeyboardButton(t(replies.ASK_IDENTIFIER_BUTTON), callback_data=data)])
    return InlineKeyboardMarkup(rows)


def offers_identifiers(settings: Settings, verdict: Verdict) -> bool:
    """Whether an answer offers "ask an identifier": unsure of the species, and someone to ask."""
    return verdict in UNSURE_VERDICTS and bool(settings.identifier_ids or settings.admin_ids)


@dataclass(frozen=True)
class Recorded:
    """A committed feedback, with the answer it was given on (as stored)."""

    what: str  # what the user said, as shown back to them
    top5: list[SpeciesScore]
    verdict: Verdict
    header: str | None = None  # an album's answer: how many photos, which were left out
    ask_identifiers: bool = False  # the answer offers "ask an identifier"


@dataclass(frozen=True)
class Settled:
    """A tap contradicting the name identifiers confirmed for the photo: not recorded. The
    confirmed name stands (docs/identifiers.md); the user is told which it is."""

    name: str


async def feedback_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    tap = callbacks.parse(query.data)
    t = await translator_for(update, context)
    belongs = await _belongs(update, context, tap)
    if belongs is None:
        await query.answer(t(replies.GONE), show_alert=True)
        return
    if not belongs:  # forged, or from another message: nothing is recorded
        await query.answer(t(replies.NOT_THIS_ANSWER), show_alert=True)
        return
    if tap.choice == ASK_IDENTIFIERS:
        await ask_identifier(update, context, tap.prediction_id, t)
        return
    if tap.choice == NONE_OF_THESE:
        user = update.effective_user

        def ask_name(session: Session) -> None:
            ensure_user(session, user.id, user.username, user.first_name)
            expires = datetime.now(UTC) + QUESTION_EXPIRES
            ask(session, user.id, NAME_QUESTION, tap.prediction_id, expires)
            allow_naming(session, user.id, tap.prediction_id)

        await services(context).db(ask_name)
        await query.answer()
        await query.message.reply_text(t(replies.ASK_NAME))
        return
    if tap.choice == SECOND_PHOTO:
        await _ask_second_photo(update, context, tap.prediction_id, t)
        return
    if tap.source == Source.NEW_SPECIES:
        await _record_new_species(update, context, tap.prediction_id, tap.new_species_id, t)
        return
    recorded = await _record(update, context, tap.prediction_id, tap.species_index, t)
    if recorded is None:
        await query.answer(t(replies.GONE), show_alert=True)
        return
    if isinstance(recorded, Settled):
        await query.answer(t(replies.NAME_SETTLED).format(name=recorded.name), show_alert=True)
        return
    await query.answer(t(replies.THANKS_SHORT))
    if tap.source == Source.TYPED_NAME:
        await query.edit_message_text(t(replies.THANKS).format(what=recorded.what))
        return
    # The answer itself, drawn again from the stored prediction, with what was recorded.
    try:
        await query.edit_message_text(
            replies.top5_answer(
                recorded.top5, recorded.verdict, recorded.what, recorded.header, t=t
            ),
            parse_mode=ParseMode.HTML,
            reply_markup=feedback_keyboard(
                tap.prediction_id, recorded.top5, t, ask_identifiers=recorded.ask_identifiers
            ),
        )
    except BadRequest as err:  # the same button tapped twice: nothing to change
        if "not modified" not in str(err).lower():
            raise


async def _ask_second_photo(
    update: Update, context: ContextTypes.DEFAULT_TYPE, prediction_id: int, t: Translator
) -> None:
    """Wait for the photographer's next photo, to combine it with this one (bot/handlers/
    albums.py, answer_second_photo). Only for the user who sent the photo, in their private
    chat, under a single photo's unsure answer: any other tap records nothing."""
    query = update.callback_query
    user_id = update.effective_user.id

    def work(session: Session) -> str | None:
        """None once asked; else why not."""
        prediction = prediction_by_id(session, prediction_id)
        if prediction is None:
            return replies.GONE
        photo = prediction.photo
        if photo.user_id != user_id:
            return replies.SECOND_PHOTO_NOT_YOURS
        verdict = Verdict(prediction.verdict or Verdict.SURE)
        if not offers_second_photo(verdict, photo.chat_id == user_id) or album_of(
            session, prediction_id
        ):
            return replies.NOT_THIS_ANSWER  # no such button under this answer: forged
        expires = datetime.now(UTC) + SECOND_PHOTO_EXPIRES
        ask(session, user_id, SECOND_PHOTO_QUESTION, prediction_id, expires)
        return None

    refused = await services(context).db(work)
    if refused is not None:
        log.info("second photo refused: user %s, prediction %s", user_id, prediction_id)
        await query.answer(t(refused), show_alert=True)
        return
    await query.answer()
    minutes = t.number(SECOND_PHOTO_EXPIRES.total_seconds() // 60)
    await query.message.reply_text(t(replies.SECOND_PHOTO_ASK).format(minutes=minutes))


async def _belongs(
    update: Update, context: ContextTypes.DEFAULT_TYPE, tap: callbacks.Tap
) -> bool | None:
    """Whether a tap counts where it comes from (see the module's docstring); None when its
    answer is no longer stored."""
    user_id, data = update.effective_user.id, update.callback_query.data
    message = update.callback_query.message
    if message is None:  # a button of an inline message: the bot sends none
        log.info("tap refused: user %s, data %r, not under a message", user_id, data)
        return False
    chat_id, message_id = message.chat.id, message.message_id

    def check(session: Session) -> bool | None:
        prediction = prediction_by_id(session, tap.prediction_id)
        if prediction is None:
            return None
        if tap.source == Source.ANSWER:
            return tapped_on_its_answer(prediction, chat_id, message_id)
        # Under the reply to a typed name: a private chat, whose id is the user's.
        return chat_id == user_id and may_name(session, user_id, prediction.id)

    belongs = await services(context).db(check)
    if belongs is False:
        log.info(
            "tap refused: user %s, data %r, from chat %s message %s, not its answer's",
            user_id,
            data,
            chat_id,
            message_id,
        )
    return belongs


async def typed_name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """After "none of these": match the typed name and confirm it with buttons (after "another
    species", an identifier's name: bot/handlers/identify.py)."""
    svc = services(context)
    user_id = update.effective_user.id
    t = await translator_for(update, context)
    question = await svc.db(lambda s: pending_question(s, user_id, datetime.now(UTC)))
    if question is not None and question.kind == identify.NAME_QUESTION:
        await identify.typed_name(update, context, t)
        return
    if question is None or question.kind != NAME_QUESTION:
        await update.effective_message.reply_text(t(replies.SEND_A_PHOTO))
        return
    prediction_id = question.prediction_id
    await offer_names(
        update,
        context,
        t,
        known=lambda index: callbacks.encode(Source.TYPED_NAME, prediction_id, index),
        new=lambda species_id: callbacks.encode(Source.NEW_SPECIES, prediction_id, species_id),
    )


async def _record_new_species(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    prediction_id: int,
    species_id: int,
    t: Translator,
) -> None:
    """Feedback naming a new species; approved automatically once enough users name it."""
    query = update.callback_query
    user = update.effective_user
    settings = services(context).settings

    def work(session: Session) -> str | Settled | None:
        prediction = prediction_by_id(session, prediction_id)
        species = session.get(NewSpecies, species_id)
        if prediction is None or species is None:
            return None
        species = new_species_by_key(session, species.key)  # merged meanwhile: the one it joined
        settled = _settled(
            session, prediction, Name(new_species_id=species.id, species=species.name), t
        )
        if settled is not None:
            return settled
        ensure_user(session, user.id, user.username, user.first_name)
        for answered in answered_together(session, prediction):
            record_feedback(
                session,
                photo_id=answered.photo_id,
                prediction_id=answered.id,
                user_id=user.id,
                species=species.name,
                new_species_id=species.id,
            )
        close_question(session, user.id)
        minimum = (settings.species_min_photos, settings.species_min_users)
        if all(minimum) and approve_when_enough(session, species, *minimum, datetime.now(UTC)):
            log.info("new species approved by its users: %s", species.name)
        return species.name

    name = await services(context).db(work)
    if name is None:
        await query.answer(t(replies.GONE), show_alert=True)
        return
    if isinstance(name, Settled):
        await query.answer(t(replies.NAME_SETTLED).format(name=name.name), show_alert=True)
        return
    await query.answer(t(replies.THANKS_SHORT))
    await query.edit_message_text(t(replies.NEW_SPECIES_THANKS).format(name=name))


async def _record(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    prediction_id: int,
    species_index: int | None,
    t: Translator,
) -> Recorded | Settled | None:
    """Commit the feedback (before anyone is thanked); None when the photo is gone or the
    button names no species of the serving model."""
    user = update.effective_user
    settings = services(context).settings
    names = services(context).species
    if species_index is not None and species_index >= len(names):
        return None
    species = names[species_index] if species_index is not None else None

    def work(session: Session) -> Recorded | Settled | None:
        prediction = prediction_by_id(session, prediction_id)
        if prediction is None:
            return None
        said = Name(not_a_flower=True) if species is None else Name(species_index, species)
        settled = _settled(session, prediction, said, t)
        if settled is not None:
            return settled
        ensure_user(session, user.id, user.username, user.first_name)
        # Named now: no second photo (nor typed name) is awaited for it any more.
        close_question(session, user.id, prediction.id)
        for answered in answered_together(session, prediction):  # an album: each of its photos
            record_feedback(
                session,
                photo_id=answered.photo_id,
                prediction_id=answered.id,
                user_id=user.id,
                species_index=species_index,
                species=species,
                not_a_flower=species_index is None,
            )
        what = t.species(species) if species else t("not a flower")
        album = album_of(session, prediction.id)
        if album is not None:
            used = len(album.predictions) - sum(
                item["reason"] == replies.NOT_A_FLOWER_PHOTO for item in album.left_out
            )
            return Recorded(
                what=what,
                top5=[SpeciesScore(**score) for score in album.top5],
                verdict=Verdict(album.verdict),
                header=replies.album_header(used, album.left_out, t),
            )
        # Answers stored before verdicts were kept named a species.
        verdict = Verdict(prediction.verdict or Verdict.SURE)
        return Recorded(
            what=what,
            top5=[SpeciesScore(**score) for score in prediction.top5],
            verdict=verdict,
            ask_identifiers=offers_identifiers(settings, verdict),
        )

    return await services(context).db(work)


def _settled(session: Session, prediction: Prediction, said: Name, t: Translator) -> Settled | None:
    """Identifiers confirmed another name for the photo: that one stands (Settled)."""
    confirmed = confirmed_name(session, prediction.photo_id)
    if confirmed is None or confirmed.key == said.key:
        return None
    if confirmed.not_a_flower:
        return Settled(t("not a flower"))
    return Settled(t.species(confirmed.species or ""))
