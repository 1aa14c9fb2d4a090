"""Typed settings and registries: what every params section and every extension point share.

Every setting is declared once, in a `Section` of the library package that reads it, with its
default and what it means (its field's `description`). `stages/params.py` joins the sections
into the whole params file, whose defaults params.yaml writes out (`fgvc preset demo`); presets
are small files that hold only what differs. The library receives these typed sections as they
were validated: no second copy of a default anywhere.

A `Registry` names the variants of one role (a target format, a zero-shot baseline, an adapter
method, a CLIP library): the module that implements one registers it, so adding one is that
module, its test and its params entry. A registry finds its entries by importing every module
of its folder; those modules import only light things at their top (pydantic, numpy, pandas),
because params are validated by every command before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Callable
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

T = TypeVar("T")

Device = Literal["auto", "cpu", "cuda"]


class Section(BaseModel):
    """A params section: unknown keys refused, values frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Whole:
    """Marks a setting a preset replaces whole instead of merging into: named entries (one
    stage each: a preset's backbones are *the* backbones), and registry entries."""


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


def _not_empty(entries):
    if not entries:
        raise ValueError("needs at least one entry")
    return entries


# Named entries, one DVC stage each (`clip.backbones` -> clip@<name>, `describe.sets`); some
# may be empty (`data.demo: {}`: no demo world to draw, so no demo@ stage).
Named = Annotated[dict[str, T], Whole, AfterValidator(_stage_names), AfterValidator(_not_empty)]
NamedOrEmpty = Annotated[dict[str, T], Whole, AfterValidator(_stage_names)]
# A list of names, each one stage (`clip.adapter_backbones`): at least one, none twice.
StageNames = Annotated[list[str], AfterValidator(_no_repeats), AfterValidator(_not_empty)]


def one_of(chosen: str, entries, key: str) -> None:
    if chosen not in entries:
        raise ValueError(f"{chosen!r} is not one of {key} ({', '.join(entries)})")


def is_whole(field) -> bool:
    """Does a preset replace this field's value whole (see `Whole`)?"""
    return any(m is Whole or m == Whole for m in field.metadata)


# --- registries --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T  # what the role needs: a function, a class
    settings: type[Section] | None  # the entry's params section, if it has one
    doc: str  # one line: what it is (--help texts, errors, params.yaml comments)


class Registry(Generic[T]):
    """Names -> entries of one role. Entries register themselves with `register`; the
    registry imports every module of `package` (a dotted name) the first time it is asked, so
    an entry is found by living in that folder. Tests (and plugins) may register more."""

    def __init__(self, role: str, package: str):
        self.role, self.package = role, package
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = False

    def register(self, name: str, *, settings: type[Section] | None = None,
                 doc: str = "") -> Callable[[T], T]:
        def add(value: T) -> T:
            if name in self._entries and self._entries[name].value is not value:
                raise ValueError(f"{self.role} {name!r} is registered twice")
            summary = doc or (getattr(value, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, value, settings, summary)
            return value
        return add

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        self._discover()
        return list(self._entries)

    def entry(self, name: str) -> Entry[T]:
        self._discover()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise KeyError(f"unknown {self.role} {name!r} (known: {known})")
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).value

    def validate_settings(self, raw: Any) -> dict[str, Section]:
        """`{name: its section}` from `{name: raw settings}`: each name a known entry, each
        section validated by the entry's own model (errors keep their place: key.name.field)."""
        if not isinstance(raw, dict):
            raise ValueError(f"must be a mapping of {self.role} names to their settings")
        validated, errors = {}, []
        for name, settings in raw.items():
            if isinstance(settings, Section):
                validated[name] = settings
                continue
            try:
                model = self._settings_of(str(name))
            except ValueError as error:
                errors.append({"type": "value_error", "loc": (name,), "input": settings,
                               "ctx": {"error": error}})
                continue
            try:
                validated[name] = model.model_validate({} if settings is None else settings)
            except ValidationError as error:
                errors += [dict(e, loc=(name, *e["loc"])) for e in error.errors()]
        if errors:
            raise ValidationError.from_exception_data(self.role, [_details(e) for e in errors])
        return validated

    def validate_one(self, raw: Any, key: str) -> Section:
        """One entry's section from a mapping whose `key` names the entry (`format: cub`)."""
        if isinstance(raw, Section):
            return raw
        if not isinstance(raw, dict) or key not in raw:
            raise ValueError(f"must be a mapping with a `{key}` key naming the {self.role}")
        return self._settings_of(str(raw[key]), key).model_validate(raw)

    def _settings_of(self, name: str, key: str | None = None) -> type[Section]:
        if name not in self.names():
            where = f"{key}: " if key else ""
            raise ValueError(f"{where}{name!r} is not a known {self.role} (known: "
                             f"{', '.join(sorted(self.names()))})")  # whatever imported first
        return self.entry(name).settings or Section


def _details(error: dict) -> dict:
    """A validation error as `ValidationError.from_exception_data` takes it back."""
    return {"type": error["type"], "loc": error["loc"], "input": error.get("input"),
            **({"ctx": error["ctx"]} if "ctx" in error else {})}


def lazy_exports(package: str, names: dict[str, str]):
    """A module `__getattr__` serving `names` (public name -> submodule) on first use, so that
    importing one light submodule of a package (its settings) does not import torch."""
    def getattr_(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value
        return value
    return getattr_
