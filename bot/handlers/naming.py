"""A typed species name turned into buttons: the known species it matches, and the offer to
record it as a new species. Users naming their own photo (bot/handlers/feedback.py) and
identifiers naming someone else's (bot/handlers/identify.py) go through the same steps."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import ContextTypes

from bot import replies
from bot.handlers import services
from bot.i18n import Translator
from bot.species import (
    MAX_NEW_NAME,
    closest_key,
    display_new_name,
    known_as,
    match_species,
    new_species_key,
)
from storage import add_new_species, close_question, new_species_by_key, open_new_species


async def offer_names(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    t: Translator,
    known: Callable[[int], str],
    new: Callable[[int], str],
) -> Message | None:
    """The known species a typed name matches, as buttons (`known`: a species index's callback
    data). A name that is not exactly a known species can also be recorded as a new species
    (`new`: a new species id's data; typing "tulip" finds "siam tulip", which is no tulip). The
    question closes with an exact match; else it stays open, to type the name again. The
    message sent with buttons, or None (no usable name)."""
    svc = services(context)
    user_id = update.effective_user.id
    message = update.effective_message
    names = svc.species
    matches = match_species(message.text, names)
    exact = len(matches) == 1 and known_as(message.text, names[matches[0]])
    rows = [[InlineKeyboardButton(t.species(names[i]), callback_data=known(i))] for i in matches]
    key = new_species_key(message.text)
    if exact:
        await svc.db(lambda s: close_question(s, user_id))
    elif key is None:
        await message.reply_text(t(replies.NAME_UNUSABLE).format(limit=MAX_NEW_NAME))
        return None
    else:
        species_id, name = await svc.db(lambda s: new_species_for(s, key))
        button = t(replies.NEW_SPECIES_BUTTON).format(name=name)
        rows.append([InlineKeyboardButton(button, callback_data=new(species_id))])
        if not matches:
            typed = message.text[:MAX_NEW_NAME]
            text = t(replies.NEW_SPECIES_OFFER).format(typed=typed, name=name)
            return await message.reply_text(text, reply_markup=InlineKeyboardMarkup(rows))
    return await message.reply_text(
        t(replies.CONFIRM_NAME), reply_markup=InlineKeyboardMarkup(rows)
    )


def new_species_for(session: Session, key: str) -> tuple[int, str]:
    """The new species under `key`, or under a near-identical spelling others used ("Tulips",
    "tulp" -> "Tulip"), or a new candidate: (id, name)."""
    species = new_species_by_key(session, key)
    if species is None:
        known = closest_key(key, [s.key for s in open_new_species(session)])
        species = new_species_by_key(session, known) if known else None
    if species is None:
        species = add_new_species(session, key, display_new_name(key))
    return species.id, species.name
