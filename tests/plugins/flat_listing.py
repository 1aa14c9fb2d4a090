"""A target format from outside the library: `flat_listing`, one CSV file listing every image
(`path,class,split`) beside a flat folder of images."""

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.settings import TargetSettings


class FlatListing(TargetSettings):
    """Images in one folder, a CSV listing their class and split."""

    listing: str = Field("images.csv", description="the CSV, in the target's folder")


@TARGET_FORMATS.register("flat_listing", settings=FlatListing)
def read(data_root: Path, settings: FlatListing) -> TargetDataset:
    """The listing's images, classes numbered in name order."""
    root = Path(data_root) / settings.path
    if not (root / settings.listing).is_file():
        raise DatasetLayoutError(f"missing file {root / settings.listing}", key="listing")
    listing = pd.read_csv(root / settings.listing)
    names = sorted(listing["class"].unique())
    classes = pd.DataFrame({"class_id": np.arange(1, len(names) + 1, dtype=np.int32),
                            "class_dir": names, "class_name": names})
    images = listing.merge(classes, left_on="class", right_on="class_dir")
    images.insert(0, "image_id", np.arange(1, len(images) + 1, dtype=np.int64))
    return TargetDataset(images[["image_id", "path", "class_id", "class_name", "split"]],
                         classes, None)
