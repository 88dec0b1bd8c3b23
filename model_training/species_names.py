"""Species names in other languages, from classsets/kaggle104-names.csv: one loader for the
bot, the command line and the web page.

The file is meant to be reviewed by people who know the plants. Columns: `index` (the class in
kaggle104.txt; empty for a name only the shipped Oxford model uses), `english` (the class name),
one column per language (`spanish`), and `alternatives` (other names a user may type, in any
language, separated by ";"; also the shipped model's spelling where it differs). A translation
that is not certain is the English name itself.

Names are looked up by the model's class name, not by index: the shipped model's classes and
kaggle104 differ in places, and species taught by users have no row at all (they keep their own
name in every language).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

NAMES_FILE = "kaggle104-names.csv"
# Language code -> the file's column. A third language is one more column and one more entry.
LANGUAGE_COLUMNS = {"es": "spanish"}


@dataclass(frozen=True)
class SpeciesNames:
    english: str
    translations: dict[str, str]  # language code -> name
    alternatives: tuple[str, ...]

    @property
    def all_names(self) -> tuple[str, ...]:
        """Every name this species goes by: English, each translation, the alternatives."""
        return tuple(dict.fromkeys([self.english, *self.translations.values(), *self.alternatives]))


def _key(name: str) -> str:
    return name.strip().casefold()


@cache
def species_names() -> dict[str, SpeciesNames]:
    """Every row, by its English name and by each alternative (casefolded)."""
    text = resources.files("model_training.classsets").joinpath(NAMES_FILE).read_text("utf-8")
    found: dict[str, SpeciesNames] = {}
    for row in csv.DictReader(text.splitlines()):
        names = SpeciesNames(
            english=row["english"].strip(),
            translations={
                code: row[column].strip() or row["english"].strip()
                for code, column in LANGUAGE_COLUMNS.items()
            },
            alternatives=tuple(a.strip() for a in row["alternatives"].split(";") if a.strip()),
        )
        for key in [names.english, *names.alternatives]:
            found.setdefault(_key(key), names)
    return found


def translated(species: str, language: str) -> str:
    """The species' name in `language`; the class name itself when there is none."""
    names = species_names().get(_key(species))
    if names is None:
        return species
    return names.translations.get(language, species)


def other_names(species: str) -> tuple[str, ...]:
    """Every other name a user may type for this class (translations, alternatives)."""
    names = species_names().get(_key(species))
    if names is None:
        return ()
    return tuple(name for name in names.all_names if _key(name) != _key(species))
