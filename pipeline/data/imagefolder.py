"""Reader of `root/<class>/<image>` folders (torchvision's ImageFolder layout), the target format
for datasets with no format of their own: your own, or a copy already in class folders (as
Kaggle's Stanford Cars by class).

The split comes from one of:
- `root/train/<class>/<image>` and `root/test/<class>/<image>` (no split file), or
- a split file (anywhere: its path is given), one line per image: `<path under root> <train|test>`.

Class names are the folder names (`_` read as a space), or come from a names file with lines
`<folder> <name>`. Class ids are 1-based in the sorted order of the folders, as in CUB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.cub import DatasetLayoutError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def read_imagefolder(root: Path, split_file: Path | None = None,
                     class_names: Path | None = None,
                     hidden: list[Path] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The image index (image_id, path, class_id, class_name, split) and the classes (class_id,
    class_dir, class_name) of an ImageFolder tree. Hidden files and folders (a leading '.':
    macOS's `._x.jpg` twins, `.DS_Store`) are not images: skipped, and appended to `hidden`."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"missing folder {root}")
    hidden = [] if hidden is None else hidden
    if split_file is None:
        files = [(split, path) for split in ("train", "test")
                 for path in _images_under(root / split, f"{root}: no split file given, so",
                                           hidden)]
    else:
        files = _read_split_file(Path(split_file), root)
    rows = []
    for split, path in files:
        rel = path.relative_to(root)
        class_dir = rel.parts[-2] if len(rel.parts) >= 2 else None
        if class_dir is None or (split_file is None and len(rel.parts) != 3):
            raise DatasetLayoutError(f"{path}: expected <class folder>/<image> under "
                                     f"{root if split_file else root / split}")
        rows.append((rel.as_posix(), class_dir, split))
    images = pd.DataFrame(rows, columns=["path", "class_dir", "split"])
    class_dirs = sorted(images["class_dir"].unique())
    names = _read_class_names(Path(class_names), class_dirs) if class_names else {
        d: d.replace("_", " ") for d in class_dirs}
    _distinct_names(names, "data.target.class_names" if class_names else None)
    classes = pd.DataFrame({"class_id": np.arange(1, len(class_dirs) + 1, dtype=np.int32),
                            "class_dir": class_dirs,
                            "class_name": [names[d] for d in class_dirs]})
    for split in ("train", "test"):
        if not (images["split"] == split).any():
            raise DatasetLayoutError(f"{root}: no {split} images")
    images = (images.sort_values("path", ignore_index=True)
              .merge(classes, on="class_dir", how="left"))
    images.insert(0, "image_id", np.arange(1, len(images) + 1, dtype=np.int64))
    return images[["image_id", "path", "class_id", "class_name", "split"]], classes


def _images_under(folder: Path, why: str, hidden: list[Path]) -> list[Path]:
    if not folder.is_dir():
        raise DatasetLayoutError(f"{why} expected {folder} (<class folder>/<image> inside)")
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            hidden.append(path)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    if not found:
        raise DatasetLayoutError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def _read_split_file(split_file: Path, root: Path) -> list[tuple[str, Path]]:
    """(split, path) per line. Refused, naming the line: a path outside `root` (absolute, or
    climbing out with `..`), and an image listed twice (in two splits it would leak test images
    into training; twice in one split it would weigh double)."""
    if not split_file.is_file():
        raise DatasetLayoutError(f"missing split file {split_file}")
    files, missing, first = [], [], {}
    for number, line in enumerate(split_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rsplit(maxsplit=1)
        if len(fields) != 2 or fields[1] not in ("train", "test"):
            raise DatasetLayoutError(f"{split_file}: line {number}: expected "
                                     f"'<image path> <train|test>', got {line!r}")
        listed, split = fields
        relative = Path(listed)
        if relative.is_absolute() or ".." in relative.parts:
            raise DatasetLayoutError(f"{split_file}: line {number}: {listed!r} is not a path "
                                     f"under the dataset root {root} (absolute, or climbing out "
                                     "with '..'): list images by their path under it")
        key = relative.as_posix()
        if key in first:
            seen, before = first[key]
            why = (f"as {before} on line {seen} and as {split} here: an image in both splits "
                   "leaks test images into training" if before != split else
                   f"already on line {seen}: it would count twice")
            raise DatasetLayoutError(f"{split_file}: line {number}: {listed!r} is listed {why}")
        first[key] = (number, split)
        path = root / relative
        (files if path.is_file() else missing).append((split, path))
    if missing:
        raise DatasetLayoutError(f"{split_file} lists {len(missing)} image(s) not under {root}: "
                                 + ", ".join(str(p) for _, p in missing[:20])
                                 + (" ..." if len(missing) > 20 else ""))
    return files


def _distinct_names(names: dict[str, str], from_file: str | None) -> None:
    """Two folders whose class names are one after cleaning (case, '_', runs of spaces) are two
    classes no prompt can tell apart: refused, naming both."""
    seen: dict[str, str] = {}
    for folder, name in names.items():
        clean = " ".join(name.replace("_", " ").split()).lower()
        if clean in seen:
            fix = (f"name them apart in {from_file}" if from_file else
                   "rename a folder, or name them apart in a class names file "
                   "(data.target.class_names)")
            raise DatasetLayoutError(f"folders {seen[clean]!r} and {folder!r} have the same class "
                                     f"name {name!r} after cleaning: {fix}",
                                     key="class_names" if from_file else None)
        seen[clean] = folder


def _read_class_names(names_file: Path, class_dirs: list[str]) -> dict[str, str]:
    """{folder: name} from lines '<folder> <name>' or '<folder><TAB><name>' (a folder whose
    name has spaces: the tab form, or the longest folder of the tree the line starts with); a
    line without a name keeps the folder's ('_' read as a space). Every folder must be named
    once, and every line must name a folder of the tree: errors name data.target.class_names."""
    if not names_file.is_file():
        raise DatasetLayoutError(f"missing class names file {names_file}", key="class_names")
    known = set(class_dirs)
    by_length = sorted(class_dirs, key=len, reverse=True)
    names: dict[str, str] = {}
    for number, line in enumerate(names_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if "\t" in line:
            folder, _, name = line.partition("\t")
        else:
            text = line.strip()
            folder = next((d for d in by_length if text == d or text.startswith(d + " ")),
                          text.partition(" ")[0])
            name = text[len(folder):]
        folder, name = folder.strip(), name.strip()
        where = f"{names_file}: line {number}"
        if folder not in known:
            raise DatasetLayoutError(f"{where} names folder {folder!r}, which the tree has no "
                                     "images in (a folder whose name has spaces: separate it "
                                     "from its name with a tab)", key="class_names")
        if folder in names:
            raise DatasetLayoutError(f"{where} names folder {folder!r} a second time",
                                     key="class_names")
        names[folder] = name or folder.replace("_", " ")
    unnamed = [d for d in class_dirs if d not in names]
    if unnamed:
        raise DatasetLayoutError(f"{names_file} names no class for folder(s) "
                                 f"{', '.join(unnamed[:20])}", key="class_names")
    return names
