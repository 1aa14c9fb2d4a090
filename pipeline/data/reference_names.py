"""Class names as the references wrote them in their prompts (issue 22, item 3), and the choice
between those and the dataset's own (`data.target.names`).

A published zero-shot number was made with its authors' class names, which are not always a
reader's: CUB's folder-derived "Black footed Albatross" is "Black-footed Albatross" in the keys
of CBD's descriptors_cub.json (Menon & Vondrick, ICLR 2023; 57 of the 200 classes differ), and
Oxford-IIIT Pet's "American Bulldog" is "american bulldog" in CLIP's data/prompts.md (Radford et
al., ICML 2021). The lists ship under `class_names/` (README.md there names each source):
CBD's for CUB, CLIP's for Oxford Pets, Flowers-102, Food-101, Stanford Cars and FGVC-Aircraft;
a target format names its list (`reference_names` on its settings section).

A list meets the dataset's classes by normalized name (`normalize_name`: case, '-', '_',
apostrophes and a 'NNN.' prefix do not matter), never by position, except Flowers-102, whose
archive names no class: there line N is class N, as both CLIP's and CoOp's lists number them.
`names: auto` takes the reference list when the target's classes are exactly the list's, and
the dataset's own names otherwise (the demo's made-up birds, a folder of one's own);
`reference` insists (a class not in the list is one error naming the first ones); `dataset`
keeps the reader's names. Only the class_name column changes; class_dir keeps the dataset's.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pandas as pd

from pipeline.common import InputError, normalize_name

FOLDER = Path(__file__).resolve().parent / "class_names"
METADATA_KEY = "fgvc.class_names"  # on target_classes: the list used; absent: the dataset's own
DATASET_NAMES = "the dataset's own, as its reader names them (CUB's: its folder names)"
SHOWN = 5  # unmatched classes named in an error or a warning


@dataclasses.dataclass(frozen=True)
class ReferenceList:
    """One shipped list: its file under class_names/, whose it is, and how it meets classes."""

    file: str
    whose: str  # "CBD's": the report says "class names: CBD's (reference ...)"
    source: str  # what it is, in a few words
    by_number: bool = False  # line N is class N (a dataset whose archive names no class)

    @property
    def label(self) -> str:
        return f"{self.whose} (reference: {self.source})"

    def names(self) -> list[str]:
        """The list's names in file order; names that normalize alike would be one class."""
        path = FOLDER / self.file
        names = [line for line in path.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        seen: dict[str, str] = {}
        for name in names:
            if normalize_name(name) in seen:
                raise ValueError(f"{path}: {name!r} and {seen[normalize_name(name)]!r} "
                                 "normalize alike")
            seen[normalize_name(name)] = name
        return names


CLIP_PROMPTS = "CLIP's data/prompts.md"  # the source of the suite's formats' lists


@dataclasses.dataclass(frozen=True)
class NamedClasses:
    """The classes with the names chosen, and which list they are (None: the dataset's own)."""

    classes: pd.DataFrame  # class_id, class_dir, class_name
    used: str | None  # ReferenceList.label
    notes: list[str] = dataclasses.field(default_factory=list)


def match_reference(classes: pd.DataFrame, reference: ReferenceList
                    ) -> tuple[dict[int, str], list[str]]:
    """({class_id: reference name} of the classes the list names, the others as 'id: name')."""
    names = reference.names()
    if reference.by_number:
        by_id = {number: name for number, name in enumerate(names, start=1)}
        found = {int(c): by_id[int(c)] for c in classes["class_id"] if int(c) in by_id}
    else:
        by_key = {normalize_name(name): name for name in names}
        found = {int(c): by_key[normalize_name(n)]
                 for c, n in zip(classes["class_id"], classes["class_name"])
                 if normalize_name(n) in by_key}
    uses = Counter(found.values())  # two classes reading as one reference name: neither
    found = {class_id: name for class_id, name in found.items() if uses[name] == 1}
    unmatched = [f"{c}: {n}" for c, n in zip(classes["class_id"], classes["class_name"])
                 if int(c) not in found]
    return found, unmatched


def choose_class_names(classes: pd.DataFrame, target_format: str,
                       reference: ReferenceList | None, names: str) -> NamedClasses:
    """The target's classes named as `names` (data.target.names: auto | reference | dataset)
    says; `reference`: the list of the target's format (its settings' `reference_names`).
    Raises InputError (naming data.target.names) where `reference` cannot be met."""
    if names == "dataset" or (reference is None and names == "auto"):
        return NamedClasses(classes, None)
    if reference is None:
        raise InputError(f"data.target.names: 'reference' asks for a reference list of class "
                         f"names, and format {target_format!r} has none (the lists and their "
                         f"formats: {FOLDER.name}/README.md); use auto or dataset")
    found, unmatched = match_reference(classes, reference)
    complete = not unmatched and len(found) == len(reference.names())
    shown = ", ".join(unmatched[:SHOWN]) + (f" and {len(unmatched) - SHOWN} more"
                                            if len(unmatched) > SHOWN else "")
    if names == "reference" and unmatched:
        raise InputError(f"data.target.names: 'reference' asks for {reference.label}, and "
                         f"{len(unmatched)} of the target's {len(classes)} classes are not in "
                         f"{FOLDER.name}/{reference.file}: {shown}")
    if names == "auto" and not complete:
        why = (f"{len(unmatched)} of its {len(classes)} classes are not in it: {shown}"
               if unmatched else f"the target has {len(classes)} of its {len(reference.names())}")
        notes = ([f"data.target.names: auto: the dataset's own class names, not "
                  f"{reference.whose} list ({FOLDER.name}/{reference.file}): {why}"]
                 if found else [])  # none in common: another world (the demo's birds)
        return NamedClasses(classes, None, notes)
    named = classes.assign(class_name=classes["class_id"].map(
        lambda c: found[int(c)]).astype(classes["class_name"].dtype))
    return NamedClasses(named, reference.label)
