"""`format: food101`: Food-101 as food-101.tar.gz extracts: `images/<class>/<id>.jpg`,
`meta/classes.txt` (the 101 class folders, one a line) and `meta/{train,test}.txt` (lines
'<class>/<id>', no extension; 75,750 train, 25,250 test), as torchvision's Food101 reads them
(it reads the same lists from meta/{train,test}.json, classes in sorted order: classes.txt's).

Class ids are classes.txt's order; names are the folder names with '_' read as a space
('apple_pie' -> 'apple pie'); class_dir is the folder."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.coop_split import CoopLayout, read_coop_split
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.listed import Listed, class_list, class_table, index_listed, list_lines
from pipeline.data.reference_names import CLIP_PROMPTS, ReferenceList
from pipeline.data.settings import CoopSplitTarget

LAYOUT = "Food-101: food-101.tar.gz extracted, its food-101/ folder as data.target.path"
LISTS = {"train.txt": "train", "test.txt": "test"}


class Food101Target(CoopSplitTarget):
    """Food-101's layout (images/<class>/, meta/); or CoOp's split_zhou_Food101.json gives
    train/val/test."""

    reference_names = ReferenceList("food101_clip.txt", "CLIP's", CLIP_PROMPTS)


COOP = CoopLayout("images/", lambda row: row.class_dir)  # CoOp: the folders, sorted


@TARGET_FORMATS.register("food101", settings=Food101Target)
def read_food101(data_root: Path, settings: Food101Target) -> TargetDataset:
    """Food-101's listed images and its 101 classes; no attributes."""
    root = Path(data_root) / settings.path
    ids = class_list(root / "meta" / "classes.txt", LAYOUT, "class")
    folders = list(ids)
    classes = class_table(folders, [folder.replace("_", " ") for folder in folders])
    if settings.coop_split:
        return TargetDataset(*read_coop_split(root, settings.coop_split, classes, COOP), None)
    listed = []
    for file, split in LISTS.items():
        path = root / "meta" / file
        for number, line in list_lines(path, LAYOUT):
            folder, _, image = line.partition("/")
            where = f"{path}: line {number}"
            if not image:
                raise DatasetLayoutError(f"{where}: expected '<class>/<image id>', got "
                                         f"{line!r}", key="path")
            if folder not in ids:
                raise DatasetLayoutError(f"{where}: class {folder!r} is not in "
                                         f"{root / 'meta' / 'classes.txt'}", key="path")
            listed.append(Listed(f"images/{line}.jpg", ids[folder], split, where))
    images = index_listed(root, listed, classes, "meta/{train,test}.txt")
    return TargetDataset(images, classes, None)
