"""Match a species name typed by a user to the model's known species, tolerantly; and tidy a
name the model does not know into a new species' key and name."""

from __future__ import annotations

import difflib
import re
import unicodedata

from model_training.species_names import other_names


def normalise(name: str) -> str:
    """Case, accents, punctuation and simple plurals do not matter: "Roses!" == "rose"."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    words = re.findall(r"[a-z0-9]+", plain)
    return " ".join(_singular(word) for word in words)


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def match_species(typed: str, species: list[str], limit: int = 3) -> list[int]:
    """Indices of the species that best match what the user typed, best first (maybe none).
    Every name a species goes by counts: English, Spanish ("girasol") and alternatives."""
    wanted = normalise(typed)
    if not wanted:
        return []
    index_of: dict[str, int] = {}
    for index, name in enumerate(species):
        for known in (name, *other_names(name)):
            index_of.setdefault(normalise(known), index)
    if wanted in index_of:
        return [index_of[wanted]]
    names = list(index_of)
    close = difflib.get_close_matches(wanted, names, n=len(names), cutoff=0.75)
    # A typed word that is a whole word of a longer name ("orchid") also counts.
    partial = [name for name in names if wanted in name.split() and name not in close]
    # One species may come close under two of its names: each is proposed once.
    found = dict.fromkeys(index_of[name] for name in [*close, *partial])
    return list(found)[:limit]


def known_as(typed: str, species: str) -> bool:
    """Whether the user typed exactly one of the species' names (case, accents aside)."""
    return normalise(typed) in {normalise(name) for name in (species, *other_names(species))}


# A new species' name: letters and spaces, short enough to read on a button and in /species.
MAX_NEW_NAME = 60
SAME_NEW_SPECIES = 0.8  # "tulp" and "tulip" are one species; "tulip" and "lupin" are two


def new_species_key(typed: str) -> str | None:
    """The key a new species is stored under ("Tulips!" -> "tulip"); None for no usable name."""
    key = normalise(typed)
    if not any(c.isalpha() for c in key) or len(key) > MAX_NEW_NAME:
        return None
    return key


def display_new_name(key: str) -> str:
    return key[:1].upper() + key[1:]


def closest_key(key: str, keys: list[str]) -> str | None:
    """The existing new species' key that `key` is a near-identical spelling of, if any."""
    close = difflib.get_close_matches(key, keys, n=1, cutoff=SAME_NEW_SPECIES)
    return close[0] if close else None
