"""`format: flowers102`: Oxford Flowers-102 as its files come: `jpg/image_<NNNNN>.jpg` (from
102flowers.tgz), `imagelabels.mat` (`labels`: image N's class, 1-102) and `setid.mat` (`trnid`,
`valid`, `tstid`: image numbers), as torchvision's Flowers102 reads them (train + val 2,040,
test 6,149). Train and val are our train split.

The archive names no class: the names are the `cat_to_name.json` list CoOp uses, shipped in
`pipeline/data/class_names/flowers102.txt`; class_dir is the label's number."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.coop_split import CoopLayout, read_coop_split
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.listed import Listed, class_table, index_listed, mat_ids, read_mat
from pipeline.data.reference_names import CLIP_PROMPTS, ReferenceList
from pipeline.data.settings import CoopSplitTarget

LAYOUT = ("Flowers-102: 102flowers.tgz extracted (jpg/), imagelabels.mat and setid.mat beside "
          "it, in data.target.path")
SETS = {"trnid": "train", "valid": "train", "tstid": "test"}
NAMES = Path(__file__).resolve().parents[1] / "class_names" / "flowers102.txt"


class Flowers102Target(CoopSplitTarget):
    """Flowers-102's files (jpg/, imagelabels.mat, setid.mat); train + val is the train split.
    Or CoOp's split_zhou_OxfordFlowers.json gives train/val/test (no .mat file is read)."""

    reference_names = ReferenceList("flowers102_clip.txt", "CLIP's", CLIP_PROMPTS,
                                    by_number=True)  # the archive names no class


COOP = CoopLayout("jpg/", lambda row: row.class_name)  # CoOp: cat_to_name.json's names


def flower_names() -> list[str]:
    """The 102 class names, class 1 first."""
    return [line for line in NAMES.read_text().splitlines() if line and not line.startswith("#")]


@TARGET_FORMATS.register("flowers102", settings=Flowers102Target)
def read_flowers102(data_root: Path, settings: Flowers102Target) -> TargetDataset:
    """Flowers-102's images in setid.mat's sets and its 102 classes; no attributes."""
    root = Path(data_root) / settings.path
    names = flower_names()
    classes = class_table([str(i) for i in range(1, len(names) + 1)], names)
    if settings.coop_split:  # CoOp's own split of the images, not setid.mat's
        return TargetDataset(*read_coop_split(root, settings.coop_split, classes, COOP), None)
    labels_file, sets_file = root / "imagelabels.mat", root / "setid.mat"
    labels = mat_ids(labels_file, "labels", read_mat(labels_file, LAYOUT, "labels")["labels"])
    if max(labels, default=0) > len(names):
        raise DatasetLayoutError(f"{labels_file}: labels go up to {max(labels)}; Flowers-102 "
                                 f"has {len(names)} classes", key="path")
    sets = read_mat(sets_file, LAYOUT, *SETS)
    listed = []
    for name, split in SETS.items():
        for position, number in enumerate(mat_ids(sets_file, name, sets[name])):
            where = f"{sets_file}: {name}[{position}]"
            if number > len(labels):
                raise DatasetLayoutError(f"{where}: image {number}, and {labels_file.name} "
                                         f"labels {len(labels)} images", key="path")
            listed.append(Listed(f"jpg/image_{number:05d}.jpg", labels[number - 1], split, where))
    images = index_listed(root, listed, classes, "setid.mat")
    return TargetDataset(images, classes, None)
