"""The `data` stage's entry: every dataset under data.root as index tables, each image it lists
checked to exist (the missing ones named at once, not one by one in the middle of a GPU job).

Tables, by role: target_images (image_id, path, class_id, class_name, split), target_classes,
target_attributes (class_id alone where the target has none), target_captions (per-image
captions of the target: Reed et al.'s on CUB; empty where there are none), coco_images and
coco_captions (empty with `data.coco: null`: a folder of images is enough, only the Q-Former
needs COCO). Image tables carry the folder their paths are under (`folders`). Class names
are the reference list's or the dataset's own (`data.target.names`, `reference_names`); the list
used is in target_classes' schema metadata (`fgvc.class_names`; absent: the dataset's own).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd

from pipeline.data.checks import require_images
from pipeline.data.coco import read_coco_annotations, read_karpathy_coco
from pipeline.data.cub import DatasetLayoutError, read_reed_captions
from pipeline.data.formats import TARGET_FORMATS
from pipeline.data.reference_names import DATASET_NAMES, METADATA_KEY, choose_class_names
from pipeline.data.settings import Data
from pipeline.common import InputError

INDEX_TABLES = ("target_images", "target_classes", "target_attributes", "target_captions",
                "coco_images", "coco_captions")


@dataclasses.dataclass
class DatasetIndex:
    tables: dict[str, pd.DataFrame]  # INDEX_TABLES
    folders: dict[str, Path]  # image table -> the folder (data.root/<dataset>) its paths are under
    notes: list[str] = dataclasses.field(default_factory=list)  # what the reader skipped
    class_names: str | None = None  # the reference list the class names are; None: the dataset's

    def metadata(self, name: str) -> dict[str, str] | None:
        """Schema metadata of table `name`: its folder, the class-name list (target_classes,
        only where a reference list was used: an index without it has the dataset's names)."""
        meta = {"fgvc.root": self.folders[name].as_posix()} if name in self.folders else {}
        if name == "target_classes" and self.class_names:
            meta[METADATA_KEY] = self.class_names
        return meta or None

    def checksums(self) -> str:
        """Every target image's sha256, as `sha256sum` writes them (relative to the target's
        folder, in the index's order): what the stages that read the images depend on."""
        folder, lines = self.folders["target_images"], []
        for path in self.tables["target_images"]["path"]:
            with open(folder / path, "rb") as file:
                lines.append(f"{hashlib.file_digest(file, 'sha256').hexdigest()}  {path}\n")
        return "".join(lines)

    def summary(self, settings: Data) -> str:
        parts = []
        if "target_images" in self.tables:
            images, captions = self.tables["target_images"], self.tables["target_captions"]
            counts = images["split"].value_counts()
            val = int(counts.get("val", 0))  # a CoOp split file's held-out part
            parts.append(
                f"{settings.target.path}: {len(images)} images ({int(counts.get('train', 0))} "
                f"train, " + (f"{val} val, " if val else "") + f"{int(counts.get('test', 0))} "
                f"test) in {images['class_id'].nunique()} classes, all present; "
                + (f"{len(captions)} captions; " if settings.captions else
                   "no per-image captions (data.captions: null); ")
                + f"class names: {self.class_names or DATASET_NAMES}")
        if "coco_images" in self.tables:
            parts.append(f"COCO: {len(self.tables['coco_images'])} images, all present, "
                         f"{len(self.tables['coco_captions'])} captions" if settings.has_coco else
                         "no COCO (data.coco: null): no Q-Former, so its columns are left out")
        warnings = self.notes + (self.one_split_classes() if "target_images" in self.tables
                                 else [])
        return "; ".join(parts) + "".join(f"\nwarning: {line}" for line in warnings)

    def one_split_classes(self) -> list[str]:
        """A warning per split some classes lack: without training images a class can never be
        predicted; without test images it is never scored; where there is a val split (CoOp's),
        without val images no choice is checked on it."""
        images = self.tables["target_images"]
        classes = self.tables["target_classes"].set_index("class_id")["class_name"]
        lines = []
        val = [("val", "no choice is checked on it")] if (images["split"] == "val").any() else []
        for split, why in [("train", "it can never be predicted"),
                           ("test", "it is never scored"), *val]:
            lacking = sorted(set(classes.index) - set(images.loc[images["split"] == split,
                                                                 "class_id"]))
            if lacking:
                named = ", ".join(f"{c}: {classes[c]}" for c in lacking[:10])
                more = f" and {len(lacking) - 10} more" if len(lacking) > 10 else ""
                lines.append(f"{len(lacking)} class(es) have no {split} image ({why}): "
                             f"{named}{more}")
        return lines


def _read(key: str, reader, *args):
    """A reader's layout error names the params key that points at the file or folder."""
    try:
        return reader(*args)
    except DatasetLayoutError as error:
        raise InputError(f"data.{error.key and 'target.' + error.key or key}: {error}") from None


def _no_captions() -> pd.DataFrame:
    return pd.DataFrame({"image_id": pd.Series([], dtype="int64"),
                         "caption_index": pd.Series([], dtype="int32"),
                         "text": pd.Series([], dtype="str")})


def _no_coco_images() -> pd.DataFrame:
    return pd.DataFrame({"image_id": pd.Series([], dtype="int64"),
                         "path": pd.Series([], dtype="str"), "split": pd.Series([], dtype="str")})


def index_datasets(settings: Data, parts: tuple[str, ...] = ("target", "coco")) -> DatasetIndex:
    """Index the target (in the layout data.target.format names) and its captions, and COCO
    (`parts`: which of the two)."""
    root = Path(settings.root)
    tables, folders, notes, used = {}, {}, [], None
    if "target" in parts:
        tables, folders, notes, used = _index_target(root, settings)
    if "coco" in parts:
        coco_root = root / settings.coco if settings.has_coco else None
        if coco_root is not None:
            coco_images, coco_captions = (
                _read("karpathy_json", read_karpathy_coco, coco_root / settings.karpathy_json)
                if settings.karpathy_json else _read("coco", read_coco_annotations, coco_root))
            _read("coco", require_images, coco_root, coco_images, "the COCO index")
            folders["coco_images"] = coco_root
        else:  # data.coco: null: a folder of images is enough (no Q-Former)
            coco_images, coco_captions = _no_coco_images(), _no_captions()
        tables.update(coco_images=coco_images, coco_captions=coco_captions)
    return DatasetIndex(tables, folders, notes, used)


def _index_target(root: Path, settings: Data):
    target_root = root / settings.target.path
    read_target = TARGET_FORMATS.get(settings.target.format)
    target = _read("target.path", read_target, root, settings.target)
    named = choose_class_names(target.classes, settings.target.format,
                               settings.target.reference_names, settings.target.names)
    classes, images = target.classes, target.images
    if named.used:  # the dataset's own names leave the tables as the reader made them
        classes, names = named.classes, named.classes.set_index("class_id")["class_name"]
        images = images.assign(class_name=images["class_id"].map(names).astype(names.dtype))
    _read("target.path", require_images, target_root, images, "the target's index")
    captions = (_read("captions", read_reed_captions, root / settings.captions, images)
                if settings.captions else _no_captions())
    attributes = (target.attributes if target.attributes is not None
                  else pd.DataFrame({"class_id": classes["class_id"]}))
    tables = {"target_images": images, "target_classes": classes,
              "target_attributes": attributes, "target_captions": captions}
    return tables, {"target_images": target_root}, list(target.notes) + named.notes, named.used
