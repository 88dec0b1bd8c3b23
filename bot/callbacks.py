"""Feedback buttons' callback data: written and read only here.

"fb:<prediction id>:<choice>" sits under an answer, "nm:<prediction id>:<species index>" under the
confirmation of a typed name, "ns:<prediction id>:<new species id>" under the offer to record a
name the model does not know (names stay in the database: a typed name could pass Telegram's 64
bytes). The prediction id names the very answer the user saw (and so the model version that made
it); at most ~20 bytes. Under an unsure answer, "fb:<prediction id>:more" waits for a second photo
of the same plant and "fb:<prediction id>:ask" asks identifiers to name the photo.

"iq:<request id>:<choice>" sits under a photo handed to an identifier (bot/handlers/identify.py):
a species index, "new<id>" (a new species, after a typed name), "nf", "other" or "skip".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    ANSWER = "fb"  # a button under the top-5 answer
    TYPED_NAME = "nm"  # a button confirming a name typed after "None of these"
    NEW_SPECIES = "ns"  # a button recording a typed name as a new species


NONE_OF_THESE, NOT_A_FLOWER, ASK_IDENTIFIERS = "none", "nf", "ask"
SECOND_PHOTO = "more"  # "Add a photo of the same plant": records nothing, waits for a photo
# [0-9] and \Z: no other digits, no trailing newline ("$" would accept one).
_CHOICE = rf"([0-9]+|{NONE_OF_THESE}|{NOT_A_FLOWER}|{SECOND_PHOTO}|{ASK_IDENTIFIERS})"
PATTERN = rf"^({Source.ANSWER}|{Source.TYPED_NAME}|{Source.NEW_SPECIES}):[0-9]+:{_CHOICE}\Z"
_PARSER = re.compile(PATTERN)


@dataclass(frozen=True)
class Tap:
    source: Source
    prediction_id: int
    choice: str  # a species index, NONE_OF_THESE, NOT_A_FLOWER, SECOND_PHOTO or ASK_IDENTIFIERS

    @property
    def species_index(self) -> int | None:
        """The chosen known species; None for "not a flower", "none of these", new species,
        "add a photo" and "ask an identifier"."""
        if self.source == Source.NEW_SPECIES or not self.choice.isdigit():
            return None
        return int(self.choice)

    @property
    def new_species_id(self) -> int | None:
        return int(self.choice) if self.source == Source.NEW_SPECIES else None


def encode(source: Source, prediction_id: int, choice: int | str) -> str:
    return f"{source}:{prediction_id}:{choice}"


def parse(data: str) -> Tap:
    if not _PARSER.match(data):
        raise ValueError(f"not feedback callback data: {data!r}")
    source, prediction_id, choice = data.split(":")
    if source == Source.NEW_SPECIES and not choice.isdigit():
        raise ValueError(f"a new species button names one by id: {data!r}")
    return Tap(Source(source), int(prediction_id), choice)


IDENTIFY, NEW, OTHER_SPECIES, SKIP = "iq", "new", "other", "skip"
IDENTIFY_PATTERN = (
    rf"^{IDENTIFY}:[0-9]+:([0-9]+|{NEW}[0-9]+|{NOT_A_FLOWER}|{OTHER_SPECIES}|{SKIP})\Z"
)
_IDENTIFY_PARSER = re.compile(IDENTIFY_PATTERN)


@dataclass(frozen=True)
class IdentifyTap:
    request_id: int
    choice: str  # a species index, NEW + a new species' id, NOT_A_FLOWER, OTHER_SPECIES or SKIP

    @property
    def species_index(self) -> int | None:
        return int(self.choice) if self.choice.isdigit() else None

    @property
    def new_species_id(self) -> int | None:
        return int(self.choice.removeprefix(NEW)) if self.choice.startswith(NEW) else None


def encode_identify(request_id: int, choice: int | str) -> str:
    return f"{IDENTIFY}:{request_id}:{choice}"


def parse_identify(data: str) -> IdentifyTap:
    if not _IDENTIFY_PARSER.match(data):
        raise ValueError(f"not identifier callback data: {data!r}")
    _, request_id, choice = data.split(":")
    return IdentifyTap(int(request_id), choice)
