"""Command `download`: fetch the real datasets from their official sources into the layout the
`data` stage reads (not a DVC stage: the data is an input of the pipeline, not an output).

Everything it fetches is in one table, `pipeline.download.SOURCES`.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from pipeline.common import InputError


class Dataset(str, Enum):
    cub = "cub"
    reed = "reed"
    coco = "coco"
    karpathy = "karpathy"
    cbd = "cbd"
    all = "all"


def main(dataset: List[Dataset] = typer.Argument(..., help="What to fetch: one or more of cub, "
                                                 "reed, coco, karpathy, cbd, or all."),
         to: Path = typer.Option(Path("data"), "--to", help="The folder the datasets go into "
                                 "(data.root of the presets). The names inside are fixed, as "
                                 "the presets' data.target.path, data.captions and data.coco expect."),
         mirror: Optional[str] = typer.Option(None, "--mirror", metavar="URL",
                                              help="Fetch every file from <URL>/<file name> "
                                              "instead of its official host (a team mirror); "
                                              "checksums are checked all the same (Reed's "
                                              "archive has none: see below).")) -> None:
    """Download the real datasets into --to, laid out as the `data` stage reads them.

    cub: CUB-200-2011 (Caltech), 1.15 GB download, 1.2 GB on disk -> CUB_200_2011/

    reed: Reed et al. 2016 captions, on Google Drive: a manual step, it says how -> text_c10/

    coco: COCO 2014 train+val images and captions, 20.4 GB download, 20 GB on disk -> coco/

    karpathy: Karpathy's COCO split, 37 MB download, 0.41 GB on disk -> coco/dataset_coco.json

    cbd: CBD's published CUB descriptors, 49 KB -> cbd/descriptors_cub.json

    Downloads resume where they stopped and must match the published checksums; Reed's
    archive has no published checksum or size, so it is only checked for its text_c10/ folder.
    Archives unpack through a temporary folder, then are deleted.
    coco needs about 27 GB free while it unpacks.
    What is already there is skipped: running it again costs nothing.
    """
    from pipeline.download import (DATASETS, ManualStepRequired, dataset_sources,
                                        fetch_source)

    chosen = [name for choice in dataset
              for name in (DATASETS if choice is Dataset.all else (choice.value,))]
    manual = []
    for name in dict.fromkeys(chosen):  # each once, in the order given
        try:
            for source in dataset_sources(name):
                fetch_source(source, to, mirror)
        except ManualStepRequired as step:  # the others go on; the exit code says it
            print(step.instructions, file=sys.stderr)
            manual.append(step)
    if manual:
        raise InputError(" ".join(str(step) for step in manual))
