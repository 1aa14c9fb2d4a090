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
    pets = "pets"
    flowers102 = "flowers102"
    aircraft = "aircraft"
    food101 = "food101"
    cars = "cars"
    all = "all"


def main(dataset: List[Dataset] = typer.Argument(..., help="What to fetch: one or more of cub, "
                                                 "reed, coco, karpathy, cbd, pets, flowers102, "
                                                 "aircraft, food101, cars, or all (the first "
                                                 "five)."),
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

    cbd: CBD's published descriptors of CUB, Oxford-IIIT Pet and Food-101, 80 KB
    -> cbd/descriptors_{cub,pets,food101}.json

    pets: Oxford-IIIT Pet, 0.81 GB -> oxford_pets/{images,annotations}/

    flowers102: Flowers-102, 0.34 GB -> oxford_flowers/{jpg/,imagelabels.mat,setid.mat}

    aircraft: FGVC-Aircraft 2013b, 2.8 GB -> fgvc-aircraft-2013b/data/

    food101: Food-101, 5.0 GB (10 GB free while it unpacks) -> food-101/{images,meta}/

    cars: Stanford Cars, a manual step (its site is gone): it says which files go where and
    checks them -> stanford_cars/{cars_train,cars_test,devkit}/

    Downloads resume where they stopped and must match the published checksums; Reed's
    archive has no published checksum or size, so it is only checked for its text_c10/ folder.
    Archives unpack through a temporary folder, then are deleted.
    coco needs about 27 GB free while it unpacks.
    What is already there is skipped: running it again costs nothing. A fine-grained set is
    then read as the data stage reads it, and its counts printed.
    """
    from pipeline.download import DATASETS, ManualStepRequired, fetch_dataset

    chosen = [name for choice in dataset
              for name in (DATASETS if choice is Dataset.all else (choice.value,))]
    manual = []
    for name in dict.fromkeys(chosen):  # each once, in the order given
        try:
            fetch_dataset(name, to, mirror)
        except ManualStepRequired as step:  # the others go on; the exit code says it
            print(step.instructions, file=sys.stderr)
            manual.append(step)
    if manual:
        raise InputError(" ".join(str(step) for step in manual))
