"""What the bot says: short texts and the top-5 answer laid out for a phone screen."""

from __future__ import annotations

from html import escape

from model_training.classifier import SpeciesScore

BAR_WIDTH = 10

START = (
    "Hi! Send me a photo of a flower and I will tell you the five species it most likely is, "
    "with how sure I am. I know {n_species} species.\n\n"
    "Then tap the right answer under my reply (or tell me the name): your answers teach me to "
    "do better. /top5 shows my last answer again in detail; /privacy says what I keep."
)
PRIVACY = (
    "I keep the photos you send me (shrunk to 224x224), what I answered and what you told me, "
    "for {days} days, to check and improve my answers. Nothing is shared with anyone.\n"
    "/forget deletes everything I have from you, at once."
)
NOT_A_PHOTO = (
    "I can only look at photos. Send me a picture of a flower (as a photo or as an image file: "
    "JPEG, PNG, WebP or HEIC)."
)
TOO_LARGE = "That file is too large for me to download (the limit is {mb} MB). Please send it as a photo."
BAD_IMAGE = "I could not read that image: {reason}. Could you send it again as a photo?"
RATE_LIMITED = "That is a lot of flowers! Please wait a minute before sending more."
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
NO_LAST_PHOTO = "You have not sent me a photo yet. Send one, or reply /top5 to a photo."
FORGOTTEN = "Done: I deleted {photos} photo(s), {feedback} answer(s) and everything else of yours."
NOT_ADMIN = "Sorry, that command is only for the bot's administrators."
ASK_NAME = "Which flower is it? Type its name (in English) and I will find it in my list."
NO_MATCH = "I do not know a species called “{typed}”. Please check the spelling and try again."
CONFIRM_NAME = "Did you mean one of these?"
THANKS = "Thanks! Recorded: {what}."


def bar(confidence: float) -> str:
    filled = round(confidence * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def display_name(species: str) -> str:
    return species[:1].upper() + species[1:]


def top5_answer(top5: list[SpeciesScore], unsure_below: float) -> str:
    """HTML: the verdict in one line, then one line per species with a bar and a percentage."""
    best = top5[0]
    if best.confidence >= unsure_below:
        verdict = f"🌼 I think this is <b>{escape(display_name(best.species))}</b>."
    else:
        verdict = "🤔 I am not sure about this one. My best guesses:"
    lines = [verdict, ""]
    for rank, score in enumerate(top5, 1):
        lines.append(f"{rank}. {escape(display_name(score.species))}")
        lines.append(f"<code>{bar(score.confidence)}</code> {score.confidence:.0%}")
    lines += ["", "Was I right? Tap the species:"]
    return "\n".join(lines)
