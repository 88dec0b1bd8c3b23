"""The botany of the served species (classsets/taxonomy.csv) and what it adds to an answer: a
coarser "group" when the species is unsure, and a Wikipedia link per species.

The group (as iNaturalist's "we are pretty sure this is in the genus ..."): when the verdict is
"not sure" or "unknown species" but the top species' genus, or else its family, holds at least
GROUP_ABOVE of the confidence and at least two of the top-5 species, the answer names that genus
or family and those of its species among the top-5 with at least NAMED_ABOVE of the confidence.
It reads the top-5 only, so an answer stored as its top-5 (the bot's predictions, albums) gets
the same group when it is drawn again.

No Telegram or web imports: the bot, the command line and the benchmarks share this rule.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Protocol
from urllib.parse import urlencode

from model_training.abstention import Verdict

TAXONOMY_FILE = "taxonomy.csv"
# The group's summed top-5 confidence needed, chosen on Oxford val (never test) by
# bench/taxonomy.py: the smallest cut from MIN_GROUP_ABOVE (a "probably" holds at least half the
# confidence) at which at least GROUP_RIGHT_ON_VAL of val's unsure answers given a group have
# their true species in it. Measured for oxford102-v6 with a head fitted without val: 140 unsure
# of 1020; at 0.50 29 given a group, 25 right (86.2%); at 0.65 24, 22 right (91.7%). The same cut
# serves genus and family.
MIN_GROUP_ABOVE = 0.50
GROUP_ABOVE = 0.65
GROUP_RIGHT_ON_VAL = 0.90
UNSURE = frozenset({Verdict.NOT_SURE, Verdict.UNKNOWN_SPECIES})
MIN_SPECIES = 2  # a "group" of one species would only repeat the species
# A group's species worth a "perhaps": the top-5 list under it shows every one anyway. Measured
# with the shipped model (bench/taxonomy.py) on the real-world measuring halves' groups: half of
# the names were under 0.05 and the true species was among those in 6 of 251 groups; at 0.05
# garden_photos' groups name 1.6 species instead of 3.1 (true species named 91.3%, 92.0% with
# all), flower_photos' 2.1 instead of 3.4 (85.0%, 89.4%). The best species always qualifies
# (it holds at least GROUP_ABOVE / 5 of the confidence).
NAMED_ABOVE = 0.05
WIKIPEDIA_LANGUAGES = frozenset({"en", "es"})  # others link to English


@dataclass(frozen=True)
class Taxon:
    species: str  # the model's class name
    scientific_name: str  # binomial, or a genus / family for a class at that rank
    rank: str  # species, genus or family
    genus: str  # "" for a family-level class
    family: str
    family_es: str  # the family's Spanish name, e.g. "rosáceas"


class Level(StrEnum):
    GENUS = "genus"
    FAMILY = "family"


LEVELS = (Level.GENUS, Level.FAMILY)  # the order group_of tries them: the finer first


@dataclass(frozen=True)
class Group:
    level: Level
    name: str  # scientific: "Dahlia", "Asteraceae"
    species: tuple[str, ...]  # its species among the top-5 worth naming (NAMED_ABOVE), best first
    confidence: float  # the summed confidence of all its species among the top-5

    def as_json(self) -> dict[str, object]:
        return {
            "level": self.level.value,
            "name": self.name,
            "species": list(self.species),
            "confidence": self.confidence,
        }


class Scored(Protocol):
    """A species with its confidence (classifier.SpeciesScore)."""

    @property
    def species(self) -> str: ...

    @property
    def confidence(self) -> float: ...


@cache
def taxonomy() -> dict[str, Taxon]:
    """Every row of the file, by class name. Lines starting with "#" are its notes."""
    text = resources.files("model_training.classsets").joinpath(TAXONOMY_FILE).read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {
        row["class"]: Taxon(
            species=row["class"],
            scientific_name=row["scientific_name"],
            rank=row["rank"],
            genus=row["genus"],
            family=row["family"],
            family_es=row["family_es"],
        )
        for row in rows
    }


def taxon(species: str) -> Taxon | None:
    """None for a species the file lacks (one taught by users)."""
    return taxonomy().get(species)


def family_name(family: str, language: str) -> str:
    """The family as said in a sentence: its scientific name, in Spanish its Spanish name."""
    if language == "es":
        for row in taxonomy().values():
            if row.family == family:
                return row.family_es
    return family


def group_of(top: Sequence[Scored], verdict: Verdict, above: float = GROUP_ABOVE) -> Group | None:
    """The genus, else the family, of the best species, when the verdict is unsure and it holds
    `above` of the confidence and at least MIN_SPECIES of `top` (the top-5, best first); it names
    those with at least NAMED_ABOVE of the confidence."""
    best = taxon(top[0].species) if top else None
    if verdict not in UNSURE or best is None:
        return None
    for level in LEVELS:
        name = getattr(best, level.value)
        if not name:
            continue
        members = [s for s in top if (t := taxon(s.species)) and getattr(t, level.value) == name]
        confidence = sum(s.confidence for s in members)
        if len(members) >= MIN_SPECIES and confidence >= above:
            named = tuple(s.species for s in members if s.confidence >= NAMED_ABOVE)
            return Group(level, name, named, float(confidence))
    return None


def in_group(group: Group, species: str) -> bool:
    """Whether a species (a class name) belongs to the group: what "right" means for a group."""
    found = taxon(species)
    return found is not None and getattr(found, group.level.value) == group.name


def wikipedia_url(scientific_name: str, language: str) -> str:
    """Wikipedia's search-and-go address: the article when the name has one, else a search."""
    host = language if language in WIKIPEDIA_LANGUAGES else "en"
    query = urlencode({"search": scientific_name, "go": "Go"})
    return f"https://{host}.wikipedia.org/w/index.php?{query}"


def species_url(species: str, language: str) -> str | None:
    """The species' Wikipedia address in the language, None when the file lacks the species."""
    found = taxon(species)
    return None if found is None else wikipedia_url(found.scientific_name, language)
