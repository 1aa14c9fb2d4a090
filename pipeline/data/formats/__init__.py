"""Target formats: each module here reads one dataset layout, as its archive extracts, into a
`TargetDataset` (the image index, the classes and, where the dataset has them, the class x
attribute matrix). `data.target.format` names one; the module's settings section adds the keys
that format reads beside `format` and `path`.

An entry registers itself with `TARGET_FORMATS.register(<format>, settings=<its section>)` on a
function `read(data_root, settings) -> TargetDataset`; a layout that is not as expected raises
`pipeline.data.cub.DatasetLayoutError` (its `key`: the data.target key to fix). Modules here
import only pandas and numpy at their top (params validation imports them all).
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from pipeline.config import Registry

TARGET_FORMATS = Registry("target format", "pipeline.data.formats")

IMAGE_COLUMNS = ["image_id", "path", "class_id", "class_name", "split"]


@dataclasses.dataclass(frozen=True)
class TargetDataset:
    """A fine-grained dataset as index tables."""

    images: pd.DataFrame  # IMAGE_COLUMNS; path relative to the target's folder; split train|test
    classes: pd.DataFrame  # class_id, class_dir, class_name
    attributes: pd.DataFrame | None  # class_id + one column per attribute (percent); None: none
    notes: list[str] = dataclasses.field(default_factory=list)  # what the reader skipped, why


__all__ = ["IMAGE_COLUMNS", "TARGET_FORMATS", "TargetDataset"]
