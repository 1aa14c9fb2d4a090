"""CoOp's split files as a target's split (`data.target.coop_split`, issue 22).

Source: Zhou et al., "Learning to Prompt for Vision-Language Models" (IJCV 2022), code at
github.com/KaiyangZhou/CoOp: `datasets/oxford_pets.py` (`save_split` / `read_split`, which the
other sets' readers reuse) writes `split_zhou_<Name>.json` as

    {"train": [[path, label, classname], ...], "val": [...], "test": [...]}

with `path` under the set's image folder (CoOp's `image_dir`: `images/` for Oxford-IIIT Pet and
Food-101, `jpg/` for Flowers-102, the set's own folder for Stanford Cars), `label` 0-based in
the set's class order, and `classname` as CoOp names the class (Pets' breeds lower case with
`_`, Food-101's folders, Flowers-102's `cat_to_name.json`, Cars' names with the year first).
CoOp's prompts read the names with `_` as a space; so do ours.

Given a split file, the target's images are the file's, `val` images get split `val` (the
held-out slice model selection uses), and the classes keep the format's order and class_dir,
named as the file names them. Every entry is checked against the format's class list (its label
a class whose name, compared case- and `_`-blind, is the one CoOp derives from the format's
files): a contradiction is an error naming the file and entry, as is any entry of the wrong
shape, an empty part, a path outside the image folder, listed twice or in two parts, or not
there; so are a file that is not UTF-8 JSON and a key given twice.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pandas as pd

from pipeline.common import unique_keys
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.listed import Listed, index_listed

PARTS = ("train", "val", "test")
MAX_PATH, MAX_NAME = 1_000, 300  # characters: longer is a damaged file, not a path or a name


@dataclasses.dataclass(frozen=True)
class CoopLayout:
    """How CoOp reads one set: the folder its paths are under, and its name of each class."""

    prefix: str  # under the target's folder, '' or ending in '/': 'images/'
    coop_name: Callable[[pd.Series], str]  # a row of the format's class table -> CoOp's name


def comparable(name: str) -> str:
    """'American_Pit_Bull_Terrier' and 'american pit bull terrier' compare equal."""
    return " ".join(name.replace("_", " ").split()).casefold()


def _fail(message: str) -> None:
    raise DatasetLayoutError(message, key="coop_split")


def _load(path: Path) -> dict:
    if not path.is_file():
        _fail(f"missing file {path} (CoOp's split_zhou_<Name>.json, under data.target.path)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(f"{path}: byte {error.start} is not UTF-8 ({error.reason})")
    try:
        raw = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as error:
        _fail(f"{path}: line {error.lineno}: not JSON ({error.msg})")
    except ValueError as error:  # unique_keys: a key given twice
        _fail(f"{path}: {error} (JSON keeps the last silently)")
    if not isinstance(raw, dict):
        _fail(f"{path}: expected an object {{\"train\": [...], \"val\": [...], \"test\": [...]}}"
              f", got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(PARTS))
    if unknown:
        _fail(f"{path}: unknown key {unknown[0]!r} (a split file has {', '.join(PARTS)})")
    for part in PARTS:
        if part not in raw:
            _fail(f"{path}: no {part!r} list")
        if not isinstance(raw[part], list) or not raw[part]:
            _fail(f"{path}: {part}: expected a non-empty list of [path, label, classname], got "
                  + (f"{type(raw[part]).__name__}" if not isinstance(raw[part], list)
                     else "an empty list"))
    return raw


def _entry(where: str, entry) -> tuple[str, int, str]:
    """(path, label, classname) of one entry, its types and sizes checked."""
    if not isinstance(entry, list) or len(entry) != 3:
        _fail(f"{where}: expected [path, label, classname], got {str(entry)[:80]}")
    path, label, name = entry
    if not isinstance(path, str) or not path.strip() or len(path) > MAX_PATH:
        _fail(f"{where}: the path must be a text of 1 to {MAX_PATH} characters, got "
              f"{str(path)[:80]!r}")
    if isinstance(label, bool) or not isinstance(label, int) or label < 0:
        _fail(f"{where}: the label must be a whole number from 0, got {label!r}")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        _fail(f"{where}: the class name must be a text of 1 to {MAX_NAME} characters, got "
              f"{str(name)[:80]!r}")
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or "\\" in path:
        _fail(f"{where}: {path!r} is not a path under the image folder (absolute, climbing out "
              "with '..', or with '\\')")
    return relative.as_posix(), label, name


def read_coop_split(root: Path, split_file: str, classes: pd.DataFrame,
                    layout: CoopLayout) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The image index (IMAGE_COLUMNS; splits train, val, test) and the class table (the
    format's `classes`, class_name as the file names them, '_' read as a space) of the CoOp
    split file `split_file` (under the target's folder `root`)."""
    root, path = Path(root), Path(root) / split_file
    raw = _load(path)
    expected = {int(row.class_id): layout.coop_name(row) for row in classes.itertuples()}
    names: dict[int, str] = {}
    listed, missing = [], []
    for part in PARTS:
        for position, entry in enumerate(raw[part]):
            where = f"{path}: {part}[{position}]"
            rel, label, name = _entry(where, entry)
            class_id = label + 1  # CoOp's labels are 0-based, in the format's order
            if class_id not in expected:
                _fail(f"{where}: label {label} is not one of the format's {len(expected)} "
                      f"classes (0 to {len(expected) - 1})")
            if comparable(name) != comparable(expected[class_id]):
                _fail(f"{where}: label {label} is {expected[class_id]!r} in the format's class "
                      f"list, and the file names it {name!r}")
            names.setdefault(class_id, name.replace("_", " "))
            item = Listed(layout.prefix + rel, class_id, part, where)
            if not (root / item.path).is_file():
                missing.append(item)
            listed.append(item)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        _fail(f"{missing[0].where}: {missing[0].path} is not there under {root}{more}")
    named = classes.copy()
    named["class_name"] = [names.get(int(c), n) for c, n in zip(named["class_id"],
                                                                  named["class_name"])]
    images = index_listed(root, listed, named, path.name, key="coop_split")
    return images, named
