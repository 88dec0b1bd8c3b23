"""The taxonomy file (model_training/classsets/taxonomy.csv), the coarser "group" of an unsure
answer (model_training/taxonomy.py) and how the bot words both: the group line in English and
Spanish, and each species linked to Wikipedia in the user's language."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from fake_telegram.server import _displayed

from bot.i18n import translator
from bot.replies import group_line, top5_answer
from model_training.abstention import Verdict
from model_training.classifier import SpeciesScore
from model_training.defaults import SHIPPED_MODEL_DIR
from model_training.taxonomy import (
    GROUP_ABOVE,
    NAMED_ABOVE,
    Level,
    group_of,
    in_group,
    species_url,
    taxonomy,
    wikipedia_url,
)

SERVED = (SHIPPED_MODEL_DIR / "classes.txt").read_text().splitlines()
INDEX = {name: i for i, name in enumerate(SERVED)}
GENUS = re.compile(r"[A-Z][a-z]+")
# "Helianthus annuus", "Amaranthus hypochondriacus", and a hybrid with a multiplication sign:
# "Pelargonium \u00d7 hortorum".
BINOMIAL = re.compile(r"([A-Z][a-z]+) (?:\u00d7 )?[a-z]+(?:-[a-z]+)?")


def top(*scores: tuple[str, float]) -> list[SpeciesScore]:
    return [SpeciesScore(name, INDEX[name], confidence) for name, confidence in scores]


# -- the file ----------------------------------------------------------------------------------


def test_every_served_class_has_exactly_one_row() -> None:
    assert sorted(taxonomy()) == sorted(SERVED)


@pytest.mark.parametrize("species", SERVED)
def test_names_are_well_formed_and_agree_with_their_rank(species) -> None:
    row = taxonomy()[species]
    assert row.family.endswith("aceae") and GENUS.fullmatch(row.family), row
    assert row.family_es and row.family_es == row.family_es.lower(), row
    assert row.family_es.split()[0].endswith(("as", "es")), row  # a Spanish plural: "rosáceas"
    if row.rank == "species":
        binomial = BINOMIAL.fullmatch(row.scientific_name)
        assert binomial and binomial.group(1) == row.genus, row
    elif row.rank == "genus":
        assert GENUS.fullmatch(row.genus) and row.scientific_name == row.genus, row
    else:
        assert row.rank == "family" and row.scientific_name == row.family and not row.genus, row


def test_one_family_per_genus_and_one_spanish_name_per_family() -> None:
    families, spanish = defaultdict(set), defaultdict(set)
    for row in taxonomy().values():
        if row.genus:
            families[row.genus].add(row.family)
        spanish[row.family].add(row.family_es)
    assert {g: f for g, f in families.items() if len(f) > 1} == {}
    assert {f: s for f, s in spanish.items() if len(s) > 1} == {}


def test_a_few_well_known_entries() -> None:
    rows = taxonomy()
    assert rows["sunflower"].scientific_name == "Helianthus annuus"
    assert (rows["rose"].scientific_name, rows["rose"].family_es) == ("Rosa", "rosáceas")
    assert rows["water lily"].scientific_name == "Nymphaea"
    assert rows["english marigold"].family == rows["barbeton daisy"].family == "Asteraceae"
    assert {
        rows[n].genus for n in ("orange dahlia", "pink-yellow dahlia", "bishop of llandaff")
    } == {"Dahlia"}


# -- the group rule ----------------------------------------------------------------------------


def test_the_genus_wins_over_the_family() -> None:
    answer = top(
        ("orange dahlia", 0.45),
        ("sunflower", 0.10),
        ("pink-yellow dahlia", 0.25),
        ("english marigold", 0.10),
        ("rose", 0.05),
    )
    group = group_of(answer, Verdict.NOT_SURE)
    assert group is not None and (group.level, group.name) == (Level.GENUS, "Dahlia")
    assert group.species == ("orange dahlia", "pink-yellow dahlia")
    assert group.confidence == pytest.approx(0.70)


def test_the_family_when_the_genus_holds_too_little() -> None:
    answer = top(
        ("english marigold", 0.40),
        ("barbeton daisy", 0.20),
        ("rose", 0.15),
        ("sunflower", 0.10),
        ("carnation", 0.05),
    )
    group = group_of(answer, Verdict.UNKNOWN_SPECIES)
    assert group is not None and (group.level, group.name) == (Level.FAMILY, "Asteraceae")
    assert group.species == ("english marigold", "barbeton daisy", "sunflower")
    assert group.confidence == pytest.approx(0.70)
    assert in_group(group, "oxeye daisy") and not in_group(group, "rose")


def test_a_group_names_only_its_species_worth_a_perhaps() -> None:
    # Asteraceae holds 0.67 with three species, but two of them hardly count: one name is said.
    small = NAMED_ABOVE - 0.01
    answer = top(
        ("sunflower", 0.67 - 2 * small),
        ("rose", 0.2),
        ("carnation", 0.13),
        ("english marigold", small),
        ("barbeton daisy", small),
    )
    group = group_of(answer, Verdict.NOT_SURE)
    assert group is not None and (group.level, group.name) == (Level.FAMILY, "Asteraceae")
    assert group.species == ("sunflower",)
    assert group.confidence == pytest.approx(0.67)
    assert group_line(group, translator("en"), html=False) == (
        "🌼 Probably a flower of the family Asteraceae, perhaps Sunflower."
    )


@pytest.mark.parametrize("verdict", [Verdict.SURE, Verdict.NOT_A_FLOWER, Verdict.TOO_SMALL])
def test_no_group_unless_the_species_is_unsure(verdict) -> None:
    answer = top(("orange dahlia", 0.6), ("pink-yellow dahlia", 0.3), ("rose", 0.05))
    assert group_of(answer, verdict) is None
    assert group_of(answer, Verdict.NOT_SURE) is not None


def test_no_group_of_a_single_top_species() -> None:
    # Rosa and Rosaceae hold only the rose among the top-5, however much confidence it has.
    answer = top(("rose", 0.9), ("sunflower", 0.04), ("carnation", 0.03), ("water lily", 0.01))
    assert group_of(answer, Verdict.UNKNOWN_SPECIES) is None


def test_no_group_below_the_cut_and_none_for_a_species_taught_by_users() -> None:
    below = GROUP_ABOVE - 0.01
    answer = top(("orange dahlia", below / 2), ("pink-yellow dahlia", below / 2), ("rose", 0.3))
    assert group_of(answer, Verdict.NOT_SURE) is None
    taught = [SpeciesScore("edelweiss", 102, 0.4), *top(("orange dahlia", 0.3))]
    assert group_of(taught, Verdict.NOT_SURE) is None


# -- links -------------------------------------------------------------------------------------


def test_wikipedia_links_search_the_scientific_name_in_the_language() -> None:
    expected = "https://en.wikipedia.org/w/index.php?search=Helianthus+annuus&go=Go"
    assert wikipedia_url("Helianthus annuus", "en") == expected
    assert species_url("sunflower", "es") == expected.replace("en.", "es.", 1)
    assert species_url("sunflower", "de") == expected  # no such Wikipedia here: English
    assert "search=Pelargonium+%C3%97+hortorum&" in species_url("geranium", "en")
    assert species_url("edelweiss", "en") is None


# -- the bot's wording -------------------------------------------------------------------------

UNSURE = top(
    ("english marigold", 0.35),
    ("barbeton daisy", 0.30),
    ("rose", 0.10),
    ("carnation", 0.05),
    ("sunflower", 0.04),
)


def test_an_unsure_answer_names_its_family_and_links_each_species_in_english() -> None:
    html = top5_answer(UNSURE, Verdict.NOT_SURE, t=translator("en"))
    shown = _displayed(html, "HTML")  # Telegram's HTML rules (tests/fake_telegram)
    assert len(shown) <= 4096
    lines = shown.splitlines()
    # The sunflower (0.04) counts toward the family but is not named.
    assert lines[2] == (
        "🌼 Probably a flower of the family Asteraceae, perhaps English marigold or Barbeton daisy."
    )
    assert lines[4] == "1. English marigold"
    link = '<a href="https://en.wikipedia.org/w/index.php?search=Calendula+officinalis&amp;go=Go">'
    assert f"1. {link}English marigold</a>" in html
    assert html.count('href="https://en.wikipedia.org/') == 5


def test_an_unsure_answer_in_spanish_says_the_family_in_spanish() -> None:
    html = top5_answer(UNSURE, Verdict.NOT_SURE, t=translator("es"))
    lines = _displayed(html, "HTML").splitlines()
    assert lines[2].startswith(
        "🌼 Probablemente una flor de la familia de las compuestas (asteráceas), quizá "
    )
    said = translator("es").species("barbeton daisy")
    assert lines[2].endswith(f"Caléndula o {said}.") and "Girasol" not in lines[2]
    assert html.count('href="https://es.wikipedia.org/') == 5 and "en.wikipedia" not in html


def test_a_genus_is_named_in_italics_and_a_sure_answer_has_no_group() -> None:
    dahlias = top(("orange dahlia", 0.45), ("pink-yellow dahlia", 0.4), ("rose", 0.05))
    html = top5_answer(dahlias, Verdict.UNKNOWN_SPECIES, t=translator("es"))
    assert "🌼 Probablemente una flor del género <i>Dahlia</i>, quizá " in html
    _displayed(html, "HTML")
    sure = top5_answer(dahlias, Verdict.SURE, t=translator("en"))
    assert "Probably" not in sure and sure.count("wikipedia.org") == 3
