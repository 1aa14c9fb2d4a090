"""Stage `data`: index the datasets under `data.root` as Parquet tables, by role.

`data.root` holds every dataset the pipeline reads (a drawn demo world, or the real data: see
`fgvc download`): the target (`data.target`, in the layout its `format` names), its per-image
captions (`data.captions`, optional), COCO 2014 (`data.coco`; null: none, and so no Q-Former)
and Karpathy's split file. dvc.yaml makes `data.root` a dependency of this stage, and the
target's image folder one of the stages that encode it, so a changed file reruns what reads it.

Outputs (in <out>): target_images, target_classes, target_attributes, target_captions,
coco_images, coco_captions (.parquet; COCO's two empty without COCO). Image tables carry their
folder in the schema metadata (`fgvc.root`: `data.root/<dataset>` as params.yaml gives it, so the same on every machine that
keeps data.root at the same relative path); paths in the table are relative to it.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.common import write_parquet
from stages.common import PARAMS_OPTION
from stages.layout import artifact_option, require_data_root
from stages.params import load_params


def main(out: Path = artifact_option("data", "index", help="Folder for the index tables."),
         params: Path = PARAMS_OPTION) -> None:
    """Index the datasets under data.root (the demo world, or your CUB / ImageFolder / COCO
    folders) as Parquet tables, after checking that every listed image exists."""
    from pipeline.data import index_datasets

    settings = load_params(params).data
    root = require_data_root(settings)
    index = index_datasets(settings)
    for name, table in index.tables.items():
        write_parquet(out / f"{name}.parquet", table, index.metadata(name))
    print(f"data: {index.summary(settings)}")
    if root.is_absolute():
        print(f"data: warning: data.root {root} is an absolute path; it is recorded in dvc.lock "
              "and the index tables, so a teammate shares these outputs only with the same path. "
              "Keep a relative one (e.g. data, a symlink to where the data is).")
