"""Stage `data`: index the datasets under `data.root` as Parquet tables, by role.

`data.root` holds every dataset the pipeline reads (a drawn demo world, or the real data: see
`fgvc download`): the target (`data.target`, in the layout its `format` names), its per-image
captions (`data.captions`, optional), COCO 2014 (`data.coco`; null: none, and so no Q-Former)
and Karpathy's split file. dvc.yaml makes `data.root` a dependency of these stages, and a
target's images.sha256 one of the stages that encode its images, so a changed image reruns
what reads it.

One target of `data.targets` at a time (`--target`; dvc.yaml runs `data@<target>` per target,
and `data_coco` for COCO's, which no target reads). Outputs (in <out>): target_images,
target_classes, target_attributes, target_captions (.parquet) and images.sha256 (every indexed
image's checksum, `sha256sum` format: the stages that encode the images depend on it, so a
changed image reruns them), coco_images, coco_captions (.parquet; empty without COCO); `--only
target` or `--only coco` writes one part. Image tables carry their folder in the schema metadata
(`fgvc.root`: `data.root/<dataset>` as params.yaml gives it, so the same on every machine that
keeps data.root at the same relative path); paths in the table are relative to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from pipeline.common import write_parquet, write_text
from stages.common import PARAMS_OPTION, TARGET_OPTION
from stages.layout import artifact, require_data_root, shown_path, target_path
from stages.params import load_params


def main(out: Optional[Path] = typer.Option(
             None, help="Folder for every index table. Default: the target's tables in "
             f"{shown_path('data', 'index')}/<target>/, COCO's in {shown_path('data', 'index')}."),
         target: str = TARGET_OPTION,
         only: Literal["all", "target", "coco"] = typer.Option(
             "all", help="Write the target's tables alone, or COCO's (dvc.yaml's data@<target> "
             "and data_coco), or both."),
         params: Path = PARAMS_OPTION) -> None:
    """Index one target under data.root (the demo world, or your CUB / ImageFolder / suite
    folders) and COCO as Parquet tables, after checking that every listed image exists."""
    from pipeline.data import index_datasets

    settings = load_params(params)
    settings = settings if only == "coco" else settings.for_target(target)
    data = settings.data
    root = require_data_root(data)
    index = index_datasets(data, ("target", "coco") if only == "all" else (only,))
    for name, table in index.tables.items():
        folder = out or (artifact("data", "index") if name.startswith("coco_") else
                         target_path("data", settings.target))
        write_parquet(folder / f"{name}.parquet", table, index.metadata(name))
    if only != "coco":
        write_text((out or target_path("data", settings.target)) / "images.sha256",
                   index.checksums())
    print(f"data: {index.summary(data)}")
    if root.is_absolute():
        print(f"data: warning: data.root {root} is an absolute path; it is recorded in dvc.lock "
              "and the index tables, so a teammate shares these outputs only with the same path. "
              "Keep a relative one (e.g. data, a symlink to where the data is).")
