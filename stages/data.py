"""Stage `data`: index the datasets under `data.root` as Parquet tables.

`data.root` holds every dataset the pipeline reads (a drawn demo world, or the real data: see
`fgvc download`): the target (`data.target`: CUB-200-2011, or ImageFolder-style folders), Reed's
captions of it (`data.reed`, optional), COCO 2014 (`data.coco`) and Karpathy's split file.
dvc.yaml makes `data.root` a dependency of this stage, and each image folder one of the stages
that encode it, so a changed file reruns what reads it.

Outputs (in <out>): cub_images, cub_classes, cub_attributes, reed_captions, coco_images,
coco_captions (.parquet; the cub_* tables hold whatever the target is). Image tables carry their
folder in the schema metadata (`fgvc.root`: `data.root/<dataset>` as params.yaml gives it, so the
same on every machine that keeps data.root at the same relative path); paths in the table are
relative to it. Every image an index lists must exist: the missing ones are named, all at once.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.common import InputError, write_parquet
from stages.common import PARAMS_OPTION
from stages.layout import artifact_option, require_data_root
from stages.params import load_params

def main(out: Path = artifact_option("data", "index", help="Folder for the index tables."),
         params: Path = PARAMS_OPTION) -> None:
    """Index the datasets under data.root (the demo world, or real CUB / ImageFolder / COCO
    folders) as Parquet tables, after checking that every listed image exists."""
    import pandas as pd

    from pipeline.data import (DatasetLayoutError, read_coco_annotations, read_cub_attributes,
                               read_cub_classes, read_cub_images, read_imagefolder,
                               read_karpathy_coco, read_reed_captions, require_images)

    config = load_params(params).data
    root = require_data_root(config)
    target = config.target
    target_root, coco_root = root / target.path, root / config.coco

    def read(key: str, reader, *args):
        """A reader's layout error names the params key that points at the folder."""
        try:
            return reader(*args)
        except DatasetLayoutError as error:
            raise InputError(f"data.{key}: {error}") from None

    if target.format == "cub":
        images = read("target.path", read_cub_images, target_root)
        classes = read("target.path", read_cub_classes, target_root)
        attributes = read("target.path", read_cub_attributes, target_root)
    else:
        for key in ("split_file", "class_names"):
            named = getattr(target, key)
            if named and not (root / named).is_file():
                raise InputError(f"data.target.{key}: {root / named} is not a file")
        images, classes = read("target.path", read_imagefolder, target_root,
                               *(root / f if f else None
                                 for f in (target.split_file, target.class_names)))
        # No attribute annotations: describe's attributes backend refuses this target.
        attributes = pd.DataFrame({"class_id": classes["class_id"]})
    read("target.path", require_images, target_root, images, "the target's index")
    reed = (read("reed", read_reed_captions, root / config.reed, images) if config.reed
            else pd.DataFrame({"image_id": pd.Series([], dtype="int64"),
                               "caption_index": pd.Series([], dtype="int32"),
                               "text": pd.Series([], dtype="str")}))
    coco_images, coco_captions = (
        read("karpathy_json", read_karpathy_coco, coco_root / config.karpathy_json)
        if config.karpathy_json else read("coco", read_coco_annotations, coco_root))
    read("coco", require_images, coco_root, coco_images, "the COCO index")

    tables = {"cub_images": (images, target_root), "cub_classes": (classes, None),
              "cub_attributes": (attributes, None), "reed_captions": (reed, None),
              "coco_images": (coco_images, coco_root), "coco_captions": (coco_captions, None)}
    for name, (table, folder) in tables.items():
        write_parquet(out / f"{name}.parquet", table,
                      {"fgvc.root": folder.as_posix()} if folder else None)
    train = int((images["split"] == "train").sum())
    print(f"data: {target.path}: {len(images)} images ({train} train, {len(images) - train} "
          f"test) in {images['class_id'].nunique()} classes, all present; "
          + (f"{len(reed)} Reed captions; " if config.reed else "no Reed captions (data.reed: "
             "null); ")
          + f"COCO: {len(coco_images)} images, all present, {len(coco_captions)} captions")
    if root.is_absolute():
        print(f"data: warning: data.root {root} is an absolute path; it is recorded in dvc.lock "
              "and the index tables, so a teammate shares these outputs only with the same path. "
              "Keep a relative one (e.g. data, a symlink to where the data is).")

