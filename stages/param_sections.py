"""The building blocks of params.yaml's sections: a strict section, lists without repeats,
named entries (one DVC stage each), devices."""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

Device = Literal["auto", "cpu", "cuda"]
T = TypeVar("T")


def _no_repeats(values: list[T]) -> list[T]:
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"must not repeat a value; repeated: {', '.join(repeated)}")
    return values


# A list whose entries must differ: `seeds: [0, 0]` would train every head twice and report a
# standard deviation of 0 over what is one seed.
Distinct = Annotated[list[T], AfterValidator(_no_repeats)]

STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _stage_names(entries: dict[str, T]) -> dict[str, T]:
    for name in entries:
        if not STAGE_NAME.fullmatch(name):
            raise ValueError(f"{name!r}: names here are DVC stage and file names (clip@<name>): "
                             "letters, digits, '.', '_' and '-'")
    return entries


def _not_empty(entries: dict[str, T]) -> dict[str, T]:
    if not entries:
        raise ValueError("needs at least one entry")
    return entries


# Named entries, one DVC stage each (`clip.backbones` -> clip@<name>, `describe.sets`); some
# sections may be empty (`data.demo: {}`: no demo world to draw, so no demo@ stage).
Named = Annotated[dict[str, T], AfterValidator(_stage_names), AfterValidator(_not_empty)]
NamedOrEmpty = Annotated[dict[str, T], AfterValidator(_stage_names)]


def one_of(chosen: str, entries: dict, key: str) -> None:
    if chosen not in entries:
        raise ValueError(f"{chosen!r} is not one of {key} ({', '.join(entries)})")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
