"""What the bot says: short texts and the top-5 answer laid out for a phone screen."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from html import escape
from typing import TYPE_CHECKING, Any

from bot.i18n import ENGLISH, N_, Translator
from model_training.abstention import Verdict
from model_training.classifier import SpeciesScore
from model_training.taxonomy import Group, Level, family_name, group_of, species_url
from storage import ModelStatus, ModelVersion, SpeciesCount, Stats

if TYPE_CHECKING:
    from bot.retraining import RetrainReport

BAR_WIDTH = 10

START = N_(
    "Hi! Send me a photo of a flower and I will tell you the five species it most likely is, "
    "with how sure I am. I know {n_species} species.\n\n"
    "Then tap the right answer under my reply (or tell me the name): your answers teach me to "
    "do better. /top5 shows my last answer again in detail; /privacy says what I keep."
)
# The chat's menu button that opens the camera page: one text for every user (Telegram's menu
# button has none per language), so a word that needs no translation.
WEBAPP_BUTTON = "📷 Camera"
WEBAPP_HINT = N_(
    "{button} (the button beside the text field) opens my camera page: point your phone at a "
    "flower to see its species live, then send the photo to me to get my answer here."
)
PRIVACY = N_(
    "I keep the photos you send me (shrunk to 224x224), what I answered and what you told me, "
    "for {days} days, to check and improve my answers. Nothing is shared with anyone, except a "
    "photo you ask an identifier about: it is shown (without your name) to the people who name "
    "photos for this bot.\n"
    "/forget deletes everything I have from you, at once, photos waiting for a name included."
)
NOT_A_PHOTO = N_(
    "I can only look at photos. Send me a picture of a flower (as a photo or as an image file: "
    "JPEG, PNG, WebP or HEIC)."
)
TOO_LARGE = N_(
    "That file is too large for me to download (the limit is {mb} MB). Please send it as a photo."
)
BAD_IMAGE = N_("I could not read that image: {reason}. Could you send it again as a photo?")
RATE_LIMITED = N_("That is a lot of flowers! Please wait a minute before sending more.")
NEXT_IN_LINE = N_(
    "Many photos are coming in right now: yours is next in line. Its answer follows shortly."
)
APOLOGY = N_("Sorry, something went wrong on my side. Please try again in a moment.")
NO_LAST_PHOTO = N_("You have not sent me a photo yet. Send one, or reply /top5 to a photo.")
FORGOTTEN = N_(
    "Done: I deleted {photos} photo(s), {feedback} answer(s) and everything else of yours."
)
NOT_ADMIN = N_("Sorry, that command is only for the bot's administrators.")
CHOOSE_LANGUAGE = N_("Which language shall I speak? (Or type /language followed by {codes}.)")
LANGUAGE_SET = N_("Done: from now on I answer in {language}.")
ASK_NAME = N_("Which flower is it? Type its name and I will find it in my list.")
CONFIRM_NAME = N_("Did you mean one of these?")
REPLY_TOP5 = N_("Reply /top5 to a photo and I will identify it.")
SEND_A_PHOTO = N_("Send me a photo of a flower and I will identify it. /help")
THANKS_SHORT = N_("Thanks!")
GONE = N_("That answer is no longer stored.")
NOT_THIS_ANSWER = N_("This button does not belong to this answer")
NEW_SPECIES_OFFER = N_(
    "I do not know a species called “{typed}”. If the spelling is right, I can record it as a "
    "new species, “{name}”, and learn it once enough people have sent it. Or type the name again."
)
NEW_SPECIES_BUTTON = N_("Record “{name}” as a new species")
NEW_SPECIES_THANKS = N_("Thanks! Recorded as a new species: {name}.")
NAME_UNUSABLE = N_("Please type a flower's name (up to {limit} letters).")
NEW_SPECIES_LIST_EMPTY = N_("No new species have been named yet.")
NEW_SPECIES_USAGE = N_(
    "Usage: /addspecies NAME approves a new species; /addspecies NAME = OTHER merges NAME into "
    "OTHER."
)
NO_SUCH_NEW_SPECIES = N_("No new species is called “{name}” (see /species).")
NEW_SPECIES_APPROVED = N_(
    "Approved: {name}. The next retraining adds it if its photos are learnt well enough."
)
NEW_SPECIES_MERGED = N_("Merged: “{merged}” is now counted as {name}.")
THANKS = N_("Thanks! Recorded: {what}.")
# "Add a photo of the same plant" under an unsure answer (docs/albums.md#a-second-photo).
SECOND_PHOTO_BUTTON = N_("📷 Add a photo of the same plant")
SECOND_PHOTO_ASK = N_(
    "Send me one more photo of the same plant within {minutes} minutes and I will answer for "
    "both photos together. Another view often settles it: come closer, show another side, or "
    "take the flower from above."
)
SECOND_PHOTO_NOT_YOURS = N_("Only the person who sent the photo can add another one.")
SECOND_PHOTO_STILL_WAITING = N_(
    "I am still waiting for another photo of the same plant: send one and I will combine it "
    "with the first."
)
SECOND_PHOTO_EXPIRED = N_(
    "⏱ Too long has passed since you asked to add a photo, so this answer is for this photo alone."
)
RECORDED_MARK = "✅"
ASK_IDENTIFIER_BUTTON = N_("🔎 Ask an identifier")
ASKED_IDENTIFIERS = N_(
    "I will show this photo to the people who name photos for this bot (not your name, nor "
    "anything else of yours). When two of them agree, I will tell you its name here. /forget "
    "withdraws it."
)
ONLY_THE_PHOTOGRAPHER = N_("Only the person who sent this photo can ask about it.")
NAME_SETTLED = N_("Identifiers have named this photo: {name}. That name stays.")
NOT_IDENTIFIER = N_("Sorry, that is only for the bot's identifiers.")
NOTHING_WAITING = N_("No photos are waiting for you now. Thank you!")
NOTHING_HELD = N_("That photo is no longer yours to name. /identify gives you the next one.")
IDENTIFY_CAPTION = N_(
    "Which flower is this? The buttons are my best guesses. Photos waiting: {waiting}."
)
OTHER_SPECIES = N_("Another species")
SKIP = N_("Skip")
SKIPPED = N_("Skipped.")
MORE_WAITING = N_("Photos waiting: {waiting}. /identify for the next.")
PHOTO_WITHDRAWN = N_("Its photographer has withdrawn this photo.")
OWN_PHOTO = N_("You cannot name your own photo here.")
ALREADY_NAMED = N_("This photo has been named already. Thank you!")
NAMED_BY_IDENTIFIERS = N_("🔎 Identifiers have named your photo: {name}.")
NAMED_NOT_A_FLOWER = N_("🔎 Identifiers say your photo does not show a flower.")
RETRAIN_STARTED = N_("Retraining started: I will report here when it is done.")
RETRAIN_BUSY = N_("A retraining is already running; try again when it has finished.")
RETRAIN_FAILED = N_("Retraining failed ({reason}); the current model keeps serving.")
ROLLBACK_USAGE = N_("Usage: /rollback VERSION (see /models).")
ROLLED_BACK = N_("Now serving {version}.")
NO_SUCH_VERSION = N_("There is no model version {version!r}. /models lists them.")
EXCLUDE_USAGE = N_("Usage: /exclude USER_ID")
EXCLUDED = N_("User {user_id}'s feedback is left out of future retraining.")
NO_SUCH_USER = N_("I have nothing from user {user_id}.")


class Refused(StrEnum):
    """Why a photo got no answer of its own (also kept in an album's left_out list)."""

    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Refusal:
    why: Refused
    detail: str = ""  # e.g. the reason the image could not be read


def refusal(refused: Refusal, max_mb: int, t: Translator = ENGLISH) -> str:
    """The reply to a single photo that got no answer."""
    if refused.why == Refused.RATE_LIMITED:
        return t(RATE_LIMITED)
    if refused.why == Refused.TOO_LARGE:
        return t(TOO_LARGE).format(mb=max_mb)
    return t(BAD_IMAGE).format(reason=refused.detail)


# Why a photo of an album was left out of its answer: Refused values, and "not_a_flower".
NOT_A_FLOWER_PHOTO = "not_a_flower"
LEFT_OUT = {
    Refused.RATE_LIMITED: N_("over the limit of photos a minute"),
    Refused.TOO_LARGE: N_("too large to download"),
    Refused.UNREADABLE: N_("I could not read it"),
    NOT_A_FLOWER_PHOTO: N_("it does not look like a flower"),
}
ALBUM_OF_ONE = N_("📷 One answer from 1 photo of one plant.")
ALBUM_OF_MANY = N_("📷 One answer from {photos} photos of one plant.")
LEFT_OUT_LINE = N_("Photo {position} left out: {reason}.")


def album_header(used: int, left_out: list[dict[str, Any]], t: Translator = ENGLISH) -> str:
    """The lines above an album's answer: how many photos it combines, which were left out."""
    lines = [t(ALBUM_OF_ONE) if used == 1 else t(ALBUM_OF_MANY).format(photos=t.number(used))]
    for item in left_out:
        reason = t(LEFT_OUT[item["reason"]])
        lines.append(t(LEFT_OUT_LINE).format(position=t.number(item["position"]), reason=reason))
    return "\n".join(lines)


def bar(confidence: float) -> str:
    filled = round(confidence * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


VERDICT_LINES = {
    Verdict.TOO_SMALL: N_(
        "🔍 This photo is too small for me to be sure. Could you send a larger one? "
        "My best guesses:"
    ),
    Verdict.NOT_A_FLOWER: N_(
        "🌿 This does not look like a flower to me. If it is one, my best guesses:"
    ),
    Verdict.UNKNOWN_SPECIES: N_(
        "🌱 I am not sure: it may be a species I do not know yet. My best guesses:"
    ),
    Verdict.NOT_SURE: N_("🤔 I am not sure about this one. My best guesses:"),
}
# The coarser answer of an unsure verdict (model_training/taxonomy.py); {family} is the family's
# scientific name in English, its Spanish name (taxonomy.csv) in Spanish.
GROUP_LINES = {
    Level.GENUS: N_("🌼 Probably a flower of the genus {genus}, perhaps {species}."),
    Level.FAMILY: N_("🌼 Probably a flower of the family {family}, perhaps {species}."),
}
OR = N_("{species} or {last}")


def group_line(group: Group, t: Translator = ENGLISH, html: bool = True) -> str:
    """HTML: "Probably a flower of the genus <i>Dahlia</i>, perhaps Orange dahlia or Pink-yellow
    dahlia" ("perhaps Orange dahlia" for one name); plain text with html=False (the command line
    prints it)."""
    mark = escape if html else str
    names = [mark(t.species(name)) for name in group.species]
    species = t(OR).format(species=", ".join(names[:-1]), last=names[-1]) if names[1:] else names[0]
    if group.level == Level.GENUS:
        genus = f"<i>{escape(group.name)}</i>" if html else group.name
        return t(GROUP_LINES[Level.GENUS]).format(genus=genus, species=species)
    family = mark(family_name(group.name, t.language))
    return t(GROUP_LINES[Level.FAMILY]).format(family=family, species=species)


def species_link(species: str, t: Translator = ENGLISH) -> str:
    """HTML: the species' name as shown to the user, linked to its Wikipedia article in the
    user's language when the taxonomy file has it."""
    name = escape(t.species(species))
    url = species_url(species, t.language)
    return name if url is None else f'<a href="{escape(url)}">{name}</a>'


def top5_answer(
    top5: list[SpeciesScore],
    verdict: Verdict,
    recorded: str | None = None,
    header: str | None = None,
    t: Translator = ENGLISH,
) -> str:
    """HTML: the verdict in one line, then one line per species with a bar and a percentage;
    after a tap, what was recorded. An album's answer starts with its header. Species names and
    percentages in the user's language; each species links to its Wikipedia article, and an
    unsure answer names the genus or family it is probably in (model_training/taxonomy.py)."""
    best = top5[0]
    if verdict == Verdict.SURE:
        species = f"<b>{escape(t.species(best.species))}</b>"
        verdict_line = t("🌼 I think this is {species}.").format(species=species)
    else:
        verdict_line = t(VERDICT_LINES[verdict])
    lines = [escape(header), ""] if header else []
    lines += [verdict_line, ""]
    group = group_of(top5, verdict)
    if group is not None:
        lines += [group_line(group, t), ""]
    for rank, score in enumerate(top5, 1):
        lines.append(f"{rank}. {species_link(score.species, t)}")
        lines.append(f"<code>{bar(score.confidence)}</code> {t.percent(score.confidence)}")
    lines += ["", t("Was I right? Tap the species:")]
    if recorded is not None:
        lines += ["", f"{RECORDED_MARK} {t(THANKS).format(what=escape(recorded))}"]
    return "\n".join(lines)


def stats_report(report: Stats, t: Translator) -> str:
    n = t.number
    lines = [
        t("<b>Last day</b>: {photos} photos from {users} users").format(
            photos=n(report.photos_last_day), users=n(report.users_last_day)
        ),
        t("<b>Last week</b>: {photos} photos from {users} users").format(
            photos=n(report.photos_last_week), users=n(report.users_last_week)
        ),
        t("<b>Feedback</b> on {rate} of photos; {not_a_flower} marked not a flower").format(
            rate=t.percent(report.feedback_rate), not_a_flower=n(report.not_a_flower)
        ),
    ]
    for version, accuracy in sorted(report.accuracy.items()):
        lines.append(
            t("<b>{version}</b>: {rate} right by feedback ({correct} of {judged})").format(
                version=escape(version),
                rate=t.percent(accuracy.rate),
                correct=n(accuracy.correct),
                judged=n(accuracy.judged),
            )
        )
    queue = report.identifiers
    line = t("<b>Identifiers</b>: {waiting} photos waiting, {confirmed} named").format(
        waiting=n(queue.waiting), confirmed=n(queue.confirmed)
    )
    if queue.median_to_name is not None:
        hours = queue.median_to_name.total_seconds() / 3600
        line += t("; median time to a name {hours} h").format(hours=n(hours, 1))
    lines.append(line)
    if report.confusions:
        lines.append(t("<b>Most confused</b> (answered → actually):"))
        lines += [
            f"{escape(t.species(c.predicted))} → {escape(t.species(c.chosen))}: {n(c.count)}"
            for c in report.confusions[:5]
        ]
    return "\n".join(lines)


def _top1(m: dict[str, Any], key: str, t: Translator) -> str:
    low, high = m[f"{key}_ci"]
    return t("{top1} ({low} to {high})").format(
        top1=t.percent(m[f"{key}_top1"], 1), low=t.percent(low, 1), high=t.percent(high, 1)
    )


def retrain_report(report: RetrainReport, t: Translator) -> str:
    """Both figures with their 95% intervals, the paired test, the species that moved most."""
    before, after, gate = report.before, report.after, report.gate
    promoted = report.status == ModelStatus.SERVING
    if promoted:
        verdict = t("promoted, now serving")
    else:
        verdict = t("not promoted: {reason}").format(reason=gate["reason"])
    lines = [
        f"<b>{escape(report.version)}</b>: {escape(verdict)}.",
        t(
            "Held-out feedback ({photos} photos): {before} → {after}; "
            "McNemar p = {p} ({gained} gained, {lost} lost)"
        ).format(
            photos=t.number(after["feedback_holdout"]),
            before=_top1(before, "feedback", t),
            after=_top1(after, "feedback", t),
            p=f"{gate['p_value']:.3g}",
            gained=t.number(gate["gained"]),
            lost=t.number(gate["lost"]),
        ),
        t("Base held-out: {before} → {after}").format(
            before=_top1(before, "base_heldout", t), after=_top1(after, "base_heldout", t)
        ),
    ]
    if gate["changed_species"]:
        moved = ", ".join(
            f"{escape(t.species(c['species']))} {t.percent(c['before'])} → {t.percent(c['after'])}"
            for c in gate["changed_species"]
        )
        lines.append(t("Changed most: {moved}").format(moved=moved))
    for check in gate.get("new_species", []):
        name = escape(t.species(check["species"]))
        why = escape(check["why"])
        if check["accepted"] and promoted:
            lines.append(t("New species {name} learnt ({why}).").format(name=name, why=why))
        elif check["accepted"]:
            text = t("New species {name} learnt by the candidate ({why}).")
            lines.append(text.format(name=name, why=why))
        else:
            text = t("New species {name} stays a candidate: {why}.")
            lines.append(text.format(name=name, why=why))
    if gate.get("contradicted_users"):
        text = t("Left out: {users} user(s) whose labels everyone else contradicts.")
        lines.append(text.format(users=t.number(gate["contradicted_users"])))
    lines.append(
        t("Trained on {photos} labelled photos; took {seconds} s.").format(
            photos=t.number(after["feedback_train"]), seconds=t.number(report.seconds, 1)
        )
    )
    return "\n".join(lines)


def models_list(versions: list[ModelVersion], t: Translator) -> str:
    lines = []
    for row in versions:
        # Retrained versions keep their before/after report; the shipped one its own metrics.
        metrics = row.metrics.get("after") or row.metrics
        parts = [f"<b>{escape(row.version)}</b> {row.status}"]
        if "base_heldout_top1" in metrics:
            top1 = _top1(metrics, "base_heldout", t)
            parts.append(t("base held-out {top1}").format(top1=top1))
        elif "heldout_top1" in metrics:
            top1 = t.percent(metrics["heldout_top1"], 1)
            parts.append(t("base held-out {top1}").format(top1=top1))
        elif "top1" in metrics:
            parts.append(t("test top-1 {top1}").format(top1=t.percent(metrics["top1"], 1)))
        if "feedback_top1" in metrics:
            top1 = _top1(metrics, "feedback", t)
            parts.append(t("feedback {top1}").format(top1=top1))
        if "gate" in row.metrics:
            parts.append(escape(row.metrics["gate"]["reason"]))
        parts.append(f"{row.created_at:%Y-%m-%d %H:%M} UTC")
        lines.append(", ".join(parts))
    return "\n".join(lines) or t("No model versions yet.")


def new_species_list(counts: list[SpeciesCount], t: Translator) -> str:
    """/species: one line per new species, most photos first."""
    if not counts:
        return t(NEW_SPECIES_LIST_EMPTY)
    lines = [t("<b>New species named by users</b>")]
    for count in counts:
        lines.append(
            t("{name}: {photos} photo(s) from {users} user(s) ({status})").format(
                name=escape(count.species.name),
                photos=t.number(count.photos),
                users=t.number(count.users),
                status=count.species.status,
            )
        )
    lines.append(t("/addspecies NAME approves one; /addspecies NAME = OTHER merges two."))
    return "\n".join(lines)
