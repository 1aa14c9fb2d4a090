"""Descriptions someone already wrote: a published CBD descriptor file, or the user's own file.

Both map class names to texts. Names are matched to the dataset's classes robustly: CBD writes
"Black-footed Albatross" for CUB's `001.Black_footed_Albatross` (class name "Black footed
Albatross"), so case, hyphens, underscores, apostrophes and the `NNN.` prefix do not matter.
A dataset class with no entry, or an entry naming no dataset class, is an error that lists
every such name (CBD #10: a file whose class order silently did not match its dataset).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from pipeline.common import InputError, UniqueKeyLoader, normalize_name, unique_keys
from pipeline.describe.prompts import descriptor_sentence
from pipeline.describe.table import DESCRIPTION_COLUMNS


MAX_TEXT_CHARACTERS = 2_000  # a description longer than this is a mistake, not a description


class UnmatchedClasses(InputError):
    """Some dataset classes have no entry in the imported file."""


def read_mapping(path: Path) -> dict[str, list[str]]:
    """A JSON or YAML file {class name: [texts] or text}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"descriptions file {path} does not exist")
    try:
        text = path.read_text()
        raw = (json.loads(text, object_pairs_hook=unique_keys) if path.suffix == ".json"
               else yaml.load(text, Loader=UniqueKeyLoader))
    except (ValueError, yaml.YAMLError) as error:  # UnicodeDecodeError is a ValueError
        detail = " ".join(str(error).split())
        raise InputError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{detail}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping {{class name: [descriptions]}}")
    mapping = {}
    for name, texts in raw.items():
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InputError(f"{path}: the entry for {name!r} must be a text or a list of texts")
        longest = max(map(len, texts), default=0)
        if longest > MAX_TEXT_CHARACTERS:
            raise InputError(f"{path}: the entry for {name!r} holds a text of {longest:,} "
                             f"characters (at most {MAX_TEXT_CHARACTERS:,}: CLIP reads 77 tokens "
                             "of it, and encoding it costs its whole length)")
        mapping[str(name)] = [t.strip() for t in texts if t.strip()]
    return mapping


def match_classes(mapping: dict[str, list[str]], classes: pd.DataFrame,
                  source: str) -> dict[int, tuple[str, list[str]]]:
    """class_id -> (the file's name for it, texts) for every dataset class. The file and the
    dataset must name the same classes: a class without texts, or an entry naming no class
    (another dataset's file, a misspelt name), is `UnmatchedClasses` listing every one, never a
    silent drop or reorder. Entries whose names normalise alike are one class, texts joined."""
    by_name: dict[str, tuple[str, list[str]]] = {}
    for name, texts in mapping.items():
        file_name, known = by_name.get(normalize_name(name), (name, []))
        by_name[normalize_name(name)] = (file_name, known + texts)
    matched, missing = {}, []
    for class_id, class_name in zip(classes["class_id"], classes["class_name"]):
        entry = by_name.get(normalize_name(class_name))
        if entry and entry[1]:
            matched[int(class_id)] = entry
        else:
            missing.append(f"{class_id}: {class_name}")
    known = {normalize_name(name) for name in classes["class_name"]}
    foreign = [entry[0] for key, entry in by_name.items() if key not in known]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(classes)} classes have no descriptions in "
                        f"{source}: {_listed(missing)}")
    if foreign:
        problems.append(f"{len(foreign)} of its {len(by_name)} entries name no class of the "
                        f"dataset: {_listed([repr(name) for name in foreign])}")
    if problems:
        raise UnmatchedClasses("; and ".join(problems) if missing else
                               f"{source}: " + problems[0])
    return matched


def _listed(names: list[str], most: int = 20) -> str:
    return "; ".join(names[:most]) + (f" ... ({len(names) - most} more)" if len(names) > most
                                      else "")


def describe_from_cbd(path: Path, classes: pd.DataFrame) -> pd.DataFrame:
    """CBD's descriptors as CBD's own texts: the file's class name and CBD's sentence rule
    ("Black-footed Albatross, which is a seabird")."""
    matched = match_classes(read_mapping(path), classes, str(path))
    return _table(classes, matched, "cbd", "cbd-import", descriptor_sentence)


def describe_from_file(path: Path, classes: pd.DataFrame) -> pd.DataFrame:
    """The user's own descriptions, as written."""
    matched = match_classes(read_mapping(path), classes, str(path))
    return _table(classes, matched, "file", Path(path).name, lambda _, text: text)


def _table(classes, matched, source, prompt_id, render) -> pd.DataFrame:
    rows = [(class_id, name, render(matched[int(class_id)][0], text), source, prompt_id, index)
            for class_id, name in zip(classes["class_id"], classes["class_name"])
            for index, text in enumerate(matched[int(class_id)][1])]
    return pd.DataFrame(rows, columns=DESCRIPTION_COLUMNS)
