"""Readers of the CUB-200-2011 layout and of Reed et al.'s `text_c10` captions (SPEC section 5).

Every reader returns plain pandas tables with the index schema the rest of the pipeline uses:

    images:   image_id, path (relative to the dataset root), class_id, class_name, split
    classes:  class_id, class_dir, class_name
    captions: image_id, caption_index, text
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common import InputError


class DatasetLayoutError(InputError):
    """A dataset directory does not have the layout its reader expects. `key`: the data.target
    key whose file it is (None: the dataset's folder itself)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _read_columns(path: Path, names: list[str]) -> pd.DataFrame:
    """A whitespace-separated file, one row per non-empty line; its first column a key that no
    two lines share (a second line of one id would contradict or double the first)."""
    if not path.is_file():
        raise DatasetLayoutError(f"missing file {path}")
    numbered = [(number, line.split(maxsplit=len(names) - 1))
                for number, line in enumerate(path.read_text().splitlines(), start=1) if line]
    bad = [number for number, row in numbered if len(row) != len(names)]
    if bad:
        raise DatasetLayoutError(f"{path}: line {bad[0]} does not have {len(names)} fields")
    first: dict[str, int] = {}
    for number, row in numbered:
        if row[0] in first:
            raise DatasetLayoutError(f"{path}: line {number}: {names[0]} {row[0]} is listed "
                                     f"again (first on line {first[row[0]]})")
        first[row[0]] = number
    return pd.DataFrame([row for _, row in numbered], columns=names)


def class_name_from_dir(class_dir: str) -> str:
    """'001.Black_footed_Albatross' -> 'Black footed Albatross' (SPEC: drop number, _ -> space)."""
    return class_dir.split(".", 1)[-1].replace("_", " ")


def read_cub_classes(root: Path) -> pd.DataFrame:
    classes = _read_columns(Path(root) / "classes.txt", ["class_id", "class_dir"])
    classes["class_id"] = classes["class_id"].astype(np.int32)
    classes["class_name"] = classes["class_dir"].map(class_name_from_dir)
    return classes


def read_cub_images(root: Path) -> pd.DataFrame:
    """The image index of a `CUB_200_2011/` directory, with class names and train/test split."""
    root = Path(root)
    images = _read_columns(root / "images.txt", ["image_id", "rel"])
    outside = [rel for rel in images["rel"] if Path(rel).is_absolute() or ".." in Path(rel).parts]
    if outside:
        raise DatasetLayoutError(f"{root / 'images.txt'}: {outside[0]!r} is not a path under "
                                 f"{root / 'images'} (absolute, or climbing out with '..')")
    twice = images["rel"].map(lambda rel: Path(rel).as_posix()).duplicated()
    if twice.any():
        raise DatasetLayoutError(f"{root / 'images.txt'}: {images['rel'][twice].iloc[0]!r} is "
                                 "listed under two image ids (in two splits it would leak test "
                                 "images into training)")
    labels = _read_columns(root / "image_class_labels.txt", ["image_id", "class_id"])
    split = _read_columns(root / "train_test_split.txt", ["image_id", "is_train"])
    table = images.merge(labels, on="image_id", how="outer").merge(split, on="image_id", how="outer")
    if table.isna().any().any() or len(table) != len(images):
        raise DatasetLayoutError(
            f"{root}: images.txt, image_class_labels.txt and train_test_split.txt list different ids")
    classes = read_cub_classes(root)
    table["image_id"] = table["image_id"].astype(np.int64)
    table["class_id"] = table["class_id"].astype(np.int32)
    table = table.merge(classes, on="class_id", how="left")
    if table["class_name"].isna().any():
        raise DatasetLayoutError(f"{root}: image_class_labels.txt names a class not in classes.txt")
    table["path"] = "images/" + table["rel"]
    table["split"] = np.where(table["is_train"] == "1", "train", "test")
    return (table.sort_values("image_id", ignore_index=True)
            [["image_id", "path", "class_id", "class_name", "split"]])


def read_cub_attributes(root: Path) -> pd.DataFrame:
    """The class x attribute matrix (percent of images showing each attribute), one row a class."""
    root = Path(root)
    names_file = root / "attributes" / "attributes.txt"
    if not names_file.is_file():  # the official tarball puts it beside CUB_200_2011/
        names_file = root.parent / "attributes.txt"
    names = _read_columns(names_file, ["attribute_id", "name"])["name"].tolist()
    matrix = np.loadtxt(root / "attributes" / "class_attribute_labels_continuous.txt", ndmin=2)
    classes = read_cub_classes(root)
    if matrix.shape != (len(classes), len(names)):
        raise DatasetLayoutError(f"{root}: attribute matrix is {matrix.shape}, expected "
                                 f"{(len(classes), len(names))} (classes x attributes)")
    table = pd.DataFrame(matrix.astype(np.float32), columns=names)
    table.insert(0, "class_id", classes["class_id"].to_numpy())
    return table


def read_reed_captions(text_root: Path, images: pd.DataFrame) -> pd.DataFrame:
    """Reed et al.'s captions: `text_c10/<class_dir>/<image stem>.txt`, one caption a line."""
    text_root = Path(text_root)
    rows = []
    for image_id, path in zip(images["image_id"], images["path"]):
        rel = Path(path).relative_to("images").with_suffix(".txt")
        file = text_root / rel
        if not file.is_file():
            raise DatasetLayoutError(f"missing captions {file} for image {image_id}")
        lines = [line.strip() for line in file.read_text().splitlines() if line.strip()]
        rows.extend((image_id, i, text) for i, text in enumerate(lines))
    return pd.DataFrame(rows, columns=["image_id", "caption_index", "text"]).astype(
        {"image_id": np.int64, "caption_index": np.int32})
