"""Feedback buttons' callback data: what is written is read back, junk is refused, and it fits."""

from __future__ import annotations

import re

import pytest

from bot.callbacks import NONE_OF_THESE, NOT_A_FLOWER, PATTERN, Source, Tap, encode, parse

# Telegram refuses callback data longer than 64 bytes.
TELEGRAM_LIMIT = 64


@pytest.mark.parametrize("source", [Source.ANSWER, Source.TYPED_NAME])
@pytest.mark.parametrize(
    ("choice", "species_index"),
    [(0, 0), (73, 73), ("101", 101), (NONE_OF_THESE, None), (NOT_A_FLOWER, None)],
)
def test_encoded_data_parses_back_to_the_same_tap(
    source: Source, choice: int | str, species_index: int | None
) -> None:
    data = encode(source, 4217, choice)
    assert data == f"{source.value}:4217:{choice}"
    assert re.match(PATTERN, data)
    tap = parse(data)
    assert tap == Tap(source, 4217, str(choice))
    assert tap.species_index == species_index


def test_a_new_species_button_carries_its_id_not_a_species_index() -> None:
    tap = parse(encode(Source.NEW_SPECIES, 4217, 12))
    assert (tap.source, tap.new_species_id, tap.species_index) == (Source.NEW_SPECIES, 12, None)
    assert parse(encode(Source.ANSWER, 4217, 12)).new_species_id is None
    with pytest.raises(ValueError):
        parse(encode(Source.NEW_SPECIES, 4217, NONE_OF_THESE))


def test_the_two_sources_are_told_apart() -> None:
    assert parse(encode(Source.ANSWER, 1, 5)).source is Source.ANSWER
    assert parse(encode(Source.TYPED_NAME, 1, 5)).source is Source.TYPED_NAME
    assert parse("fb:1:5") != parse("nm:1:5")


@pytest.mark.parametrize(
    "data",
    [
        "",
        "fb",
        "fb:1",
        "fb:1:",
        "fb::5",
        "xx:1:5",
        "FB:1:5",
        "fb:-1:5",
        "fb:1:-5",
        "fb:1:2:3",
        "fb:1:rose",
        "fb:1:None",
        "fb:one:5",
        " fb:1:5",
        "fb:1:5 ",
        # "$" would also match before a final newline (choice "5\n" names no species).
        "fb:1:5\n",
        # \d would match any Unicode digit; int() then reads this as 3.
        "fb:1:٣",
    ],
)
def test_junk_is_refused(data: str) -> None:
    assert not re.match(PATTERN, data)  # PTB's CallbackQueryHandler never routes it here
    with pytest.raises(ValueError, match="not feedback callback data"):
        parse(data)


def test_data_fits_telegrams_limit_for_a_huge_prediction_id() -> None:
    huge = 2**63 - 1  # the largest id PostgreSQL's BIGINT holds
    for source in Source:
        choices = (huge,) if source == Source.NEW_SPECIES else (101, NONE_OF_THESE, NOT_A_FLOWER)
        for choice in choices:
            data = encode(source, huge, choice)
            assert len(data.encode("utf-8")) <= TELEGRAM_LIMIT, data
            assert parse(data).prediction_id == huge


@pytest.mark.parametrize("choice", [NONE_OF_THESE, NOT_A_FLOWER])
def test_none_of_these_and_not_a_flower_name_no_species(choice: str) -> None:
    tap = parse(encode(Source.ANSWER, 9, choice))
    assert tap.species_index is None
    assert tap.choice == choice
