"""What the bot says: short texts and the top-5 answer laid out for a phone screen."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from model_training.abstention import Verdict
from model_training.classifier import SpeciesScore
from storage import ModelStatus, ModelVersion, SpeciesCount, Stats

if TYPE_CHECKING:
    from bot.retraining import RetrainReport

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
TOO_LARGE = (
    "That file is too large for me to download (the limit is {mb} MB). Please send it as a photo."
)
BAD_IMAGE = "I could not read that image: {reason}. Could you send it again as a photo?"
RATE_LIMITED = "That is a lot of flowers! Please wait a minute before sending more."
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
NO_LAST_PHOTO = "You have not sent me a photo yet. Send one, or reply /top5 to a photo."
FORGOTTEN = "Done: I deleted {photos} photo(s), {feedback} answer(s) and everything else of yours."
NOT_ADMIN = "Sorry, that command is only for the bot's administrators."
ASK_NAME = "Which flower is it? Type its name (in English) and I will find it in my list."
CONFIRM_NAME = "Did you mean one of these?"
NEW_SPECIES_OFFER = (
    "I do not know a species called “{typed}”. If the spelling is right, I can record it as a "
    "new species, “{name}”, and learn it once enough people have sent it. Or type the name again."
)
NEW_SPECIES_BUTTON = "Record “{name}” as a new species"
NEW_SPECIES_THANKS = "Thanks! Recorded as a new species: {name}."
NAME_UNUSABLE = "Please type a flower's name (up to {limit} letters)."
NEW_SPECIES_LIST_EMPTY = "No new species have been named yet."
NEW_SPECIES_USAGE = (
    "Usage: /addspecies NAME approves a new species; /addspecies NAME = OTHER merges NAME into "
    "OTHER."
)
NO_SUCH_NEW_SPECIES = "No new species is called “{name}” (see /species)."
NEW_SPECIES_APPROVED = (
    "Approved: {name}. The next retraining adds it if its photos are learnt well enough."
)
NEW_SPECIES_MERGED = "Merged: “{merged}” is now counted as {name}."
THANKS = "Thanks! Recorded: {what}."
RECORDED_MARK = "✅"
RETRAIN_STARTED = "Retraining started: I will report here when it is done."
RETRAIN_BUSY = "A retraining is already running; try again when it has finished."
RETRAIN_FAILED = "Retraining failed ({reason}); the current model keeps serving."
ROLLBACK_USAGE = "Usage: /rollback VERSION (see /models)."
ROLLED_BACK = "Now serving {version}."
NO_SUCH_VERSION = "There is no model version {version!r}. /models lists them."
EXCLUDE_USAGE = "Usage: /exclude USER_ID"
EXCLUDED = "User {user_id}'s feedback is left out of future retraining."
NO_SUCH_USER = "I have nothing from user {user_id}."


def bar(confidence: float) -> str:
    filled = round(confidence * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def display_name(species: str) -> str:
    return species[:1].upper() + species[1:]


VERDICT_LINES = {
    Verdict.TOO_SMALL: (
        "🔍 This photo is too small for me to be sure. Could you send a larger one? "
        "My best guesses:"
    ),
    Verdict.NOT_A_FLOWER: (
        "🌿 This does not look like a flower to me. If it is one, my best guesses:"
    ),
    Verdict.UNKNOWN_SPECIES: (
        "🌱 I am not sure: it may be a species I do not know yet. My best guesses:"
    ),
    Verdict.NOT_SURE: "🤔 I am not sure about this one. My best guesses:",
}


def top5_answer(top5: list[SpeciesScore], verdict: Verdict, recorded: str | None = None) -> str:
    """HTML: the verdict in one line, then one line per species with a bar and a percentage;
    after a tap, what was recorded."""
    best = top5[0]
    if verdict == Verdict.SURE:
        verdict_line = f"🌼 I think this is <b>{escape(display_name(best.species))}</b>."
    else:
        verdict_line = VERDICT_LINES[verdict]
    lines = [verdict_line, ""]
    for rank, score in enumerate(top5, 1):
        lines.append(f"{rank}. {escape(display_name(score.species))}")
        lines.append(f"<code>{bar(score.confidence)}</code> {score.confidence:.0%}")
    lines += ["", "Was I right? Tap the species:"]
    if recorded is not None:
        lines += ["", f"{RECORDED_MARK} {THANKS.format(what=escape(recorded))}"]
    return "\n".join(lines)


def stats_report(report: Stats) -> str:
    lines = [
        f"<b>Last day</b>: {report.photos_last_day} photos from {report.users_last_day} users",
        f"<b>Last week</b>: {report.photos_last_week} photos from {report.users_last_week} users",
        f"<b>Feedback</b> on {report.feedback_rate:.0%} of photos; "
        f"{report.not_a_flower} marked not a flower",
    ]
    for version, accuracy in sorted(report.accuracy.items()):
        lines.append(
            f"<b>{escape(version)}</b>: {accuracy.rate:.0%} right by feedback "
            f"({accuracy.correct} of {accuracy.judged})"
        )
    if report.confusions:
        lines.append("<b>Most confused</b> (answered → actually):")
        lines += [
            f"{escape(display_name(c.predicted))} → {escape(display_name(c.chosen))}: {c.count}"
            for c in report.confusions[:5]
        ]
    return "\n".join(lines)


def _top1(m: dict[str, Any], key: str) -> str:
    low, high = m[f"{key}_ci"]
    return f"{m[f'{key}_top1']:.1%} ({low:.1%} to {high:.1%})"


def retrain_report(report: RetrainReport) -> str:
    """Both figures with their 95% intervals, the paired test, the species that moved most."""
    before, after, gate = report.before, report.after, report.gate
    promoted = report.status == ModelStatus.SERVING
    verdict = "promoted, now serving" if promoted else f"not promoted: {gate['reason']}"
    lines = [
        f"<b>{escape(report.version)}</b>: {escape(verdict)}.",
        f"Held-out feedback ({after['feedback_holdout']} photos): "
        f"{_top1(before, 'feedback')} → {_top1(after, 'feedback')}; "
        f"McNemar p = {gate['p_value']:.3g} ({gate['gained']} gained, {gate['lost']} lost)",
        f"Base held-out: {_top1(before, 'base_heldout')} → {_top1(after, 'base_heldout')}",
    ]
    if gate["changed_species"]:
        moved = ", ".join(
            f"{escape(display_name(c['species']))} {c['before']:.0%} → {c['after']:.0%}"
            for c in gate["changed_species"]
        )
        lines.append(f"Changed most: {moved}")
    for check in gate.get("new_species", []):
        name = escape(display_name(check["species"]))
        if check["accepted"] and promoted:
            lines.append(f"New species {name} learnt ({check['why']}).")
        elif check["accepted"]:
            lines.append(f"New species {name} learnt by the candidate ({check['why']}).")
        else:
            lines.append(f"New species {name} stays a candidate: {escape(check['why'])}.")
    lines.append(
        f"Trained on {after['feedback_train']} labelled photos; took {report.seconds:.1f} s."
    )
    return "\n".join(lines)


def models_list(versions: list[ModelVersion]) -> str:
    lines = []
    for row in versions:
        # Retrained versions keep their before/after report; the shipped one its own metrics.
        metrics = row.metrics.get("after") or row.metrics
        parts = [f"<b>{escape(row.version)}</b> {row.status}"]
        if "base_heldout_top1" in metrics:
            parts.append(f"base held-out {_top1(metrics, 'base_heldout')}")
        elif "heldout_top1" in metrics:
            parts.append(f"base held-out {metrics['heldout_top1']:.1%}")
        elif "top1" in metrics:
            parts.append(f"test top-1 {metrics['top1']:.1%}")
        if "feedback_top1" in metrics:
            parts.append(f"feedback {_top1(metrics, 'feedback')}")
        if "gate" in row.metrics:
            parts.append(escape(row.metrics["gate"]["reason"]))
        parts.append(f"{row.created_at:%Y-%m-%d %H:%M} UTC")
        lines.append(", ".join(parts))
    return "\n".join(lines) or "No model versions yet."


def new_species_list(counts: list[SpeciesCount]) -> str:
    """/species: one line per new species, most photos first."""
    if not counts:
        return NEW_SPECIES_LIST_EMPTY
    lines = ["<b>New species named by users</b>"]
    for count in counts:
        lines.append(
            f"{escape(count.species.name)}: {count.photos} photo(s) from {count.users} user(s)"
            f" ({count.species.status})"
        )
    lines.append("/addspecies NAME approves one; /addspecies NAME = OTHER merges two.")
    return "\n".join(lines)
