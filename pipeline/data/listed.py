"""Shared parsing of the target formats whose images are named by list files rather than by
class folders (Oxford-IIIT Pet, Flowers-102, FGVC-Aircraft, Food-101, Stanford Cars): a file
the layout needs, a list's lines, a `.mat` file's variables, and the index tables made from the
listed (image, class, split) entries, each image checked to be under the target's folder,
listed once and present.

Errors are `DatasetLayoutError`s with key `path` (data.target.path: the folder the archive
extracts to), each naming the file, and the line or entry where one is at fault.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from pipeline.data.checks import require_images
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import IMAGE_COLUMNS


@dataclasses.dataclass(frozen=True)
class Listed:
    """One image as a list gives it."""

    path: str  # under the target's folder, e.g. 'images/Abyssinian_1.jpg'
    class_id: int  # 1-based, as the dataset numbers its classes
    split: str  # train | test (| val: a CoOp split file's held-out part)
    where: str  # the list and line (or entry) naming it, for errors: '.../test.txt: line 3'


def needed(path: Path, layout: str) -> Path:
    """`path` if it is a file; else one error naming it and the layout (`layout`: how the
    dataset's archives extract, e.g. "Oxford-IIIT Pet's annotations.tar.gz")."""
    if not Path(path).is_file():
        raise DatasetLayoutError(f"missing file {path} ({layout})", key="path")
    return Path(path)


def list_lines(path: Path, layout: str) -> list[tuple[int, str]]:
    """(line number, line without surrounding whitespace) of each line of a list that has
    text and is not a comment ('#' first, as Oxford-IIIT Pet's list.txt has)."""
    text = needed(path, layout).read_text()
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def class_list(path: Path, layout: str, what: str) -> dict[str, int]:
    """{entry: 1-based class id} of a list with one class per line (its order the ids'), an
    entry listed twice being one error naming it (`what`: "class", "variant")."""
    entries = [line for _, line in list_lines(path, layout)]
    twice = sorted({e for e in entries if entries.count(e) > 1})
    if twice:
        raise DatasetLayoutError(f"{path}: {what} {twice[0]!r} is listed twice", key="path")
    return {entry: i for i, entry in enumerate(entries, start=1)}


def read_mat(path: Path, layout: str, *names: str) -> dict[str, np.ndarray]:
    """The variables `names` of a MATLAB file (scipy's reader, singleton dimensions squeezed:
    a 1 x N vector is N values, a struct array N records), each at least one-dimensional."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    needed(path, layout)
    try:
        content = loadmat(path, squeeze_me=True)
    except (MatReadError, ValueError, TypeError, NotImplementedError, OSError) as error:
        raise DatasetLayoutError(f"{path}: not a MATLAB file scipy reads ({error})",
                                 key="path") from None
    absent = [name for name in names if name not in content]
    if absent:
        has = ", ".join(sorted(k for k in content if not k.startswith("__")))
        raise DatasetLayoutError(f"{path}: no variable {absent[0]!r} (it has: {has or 'none'})",
                                 key="path")
    return {name: np.atleast_1d(content[name]) for name in names}


def mat_ids(path: Path, name: str, values: np.ndarray) -> list[int]:
    """A .mat vector of 1-based numbers (image numbers, labels) as ints, refused (naming the
    variable) where one is not a whole number from 1."""
    numbers = np.asarray(values, dtype=np.float64).ravel()
    if numbers.size and (np.any(numbers < 1) or np.any(numbers != np.round(numbers))):
        raise DatasetLayoutError(f"{path}: {name} holds values that are not numbers from 1",
                                 key="path")
    return [int(number) for number in numbers]


def class_table(class_dirs: list[str], names: list[str]) -> pd.DataFrame:
    """The classes, 1-based in the given order: class_dir as the dataset's files name the
    class, class_name as prompts write it."""
    return pd.DataFrame({"class_id": np.arange(1, len(class_dirs) + 1, dtype=np.int32),
                         "class_dir": class_dirs, "class_name": names})


def index_listed(root: Path, listed: list[Listed], classes: pd.DataFrame,
                 lists: str, key: str = "path") -> pd.DataFrame:
    """The image index (IMAGE_COLUMNS) of the listed images: ids 1-based in the order of their
    paths (as ImageFolder's), whatever order the lists give. Refused, naming the list and line:
    a path outside `root` (absolute, or climbing out with '..'), an image listed twice (in two
    splits it would leak test images into training; twice in one it would weigh double), a
    class that is not in `classes`; then, all at once, the listed images that are not there
    (`lists` names the lists, e.g. 'annotations/trainval.txt and test.txt'). `key`: the
    data.target key the errors name (the lists' file)."""
    root = Path(root)
    first: dict[str, Listed] = {}
    known = set(classes["class_id"].tolist())
    for entry in listed:
        relative = PurePosixPath(entry.path)
        if relative.is_absolute() or ".." in relative.parts:
            raise DatasetLayoutError(f"{entry.where}: {entry.path!r} is not a path under {root} "
                                     "(absolute, or climbing out with '..')", key=key)
        posix = relative.as_posix()
        if posix in first:
            before = first[posix]
            why = (f"as {before.split} ({before.where}) and as {entry.split} here: an image in "
                   "both splits leaks test images into training" if before.split != entry.split
                   else f"already ({before.where}): it would count twice")
            raise DatasetLayoutError(f"{entry.where}: {entry.path!r} is listed {why}", key=key)
        first[posix] = entry
        if entry.class_id not in known:
            raise DatasetLayoutError(f"{entry.where}: class {entry.class_id} is not one of the "
                                     f"{len(known)} classes", key=key)
    images = pd.DataFrame([(posix, e.class_id, e.split) for posix, e in first.items()],
                          columns=["path", "class_id", "split"])
    for split in ("train", "test"):
        if not (images["split"] == split).any():
            raise DatasetLayoutError(f"{root}: {lists} list no {split} images", key=key)
    require_images(root, images, lists)
    images["class_id"] = images["class_id"].astype(np.int32)
    images = (images.sort_values("path", ignore_index=True)
              .merge(classes[["class_id", "class_name"]], on="class_id", how="left"))
    images.insert(0, "image_id", np.arange(1, len(images) + 1, dtype=np.int64))
    return images[IMAGE_COLUMNS]
