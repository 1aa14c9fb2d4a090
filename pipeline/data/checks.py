"""Checks that an index describes files that are there: a missing image is found when the index
is made, all at once, not one by one in the middle of a GPU job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.data.cub import DatasetLayoutError

LISTED = 50  # missing files named in the message; the rest are counted


def require_images(root: Path, images: pd.DataFrame, what: str) -> None:
    """Raise one error naming every missing file (the first 50, then a count) of the `path`
    column of `images` (relative to `root`); `what` names the list, e.g. 'CUB images.txt'."""
    root = Path(root)
    missing = [path for path in images["path"] if not (root / path).is_file()]
    if missing:
        named = ", ".join(missing[:LISTED])
        more = f" and {len(missing) - LISTED} more" if len(missing) > LISTED else ""
        raise DatasetLayoutError(f"{len(missing)} of the {len(images)} images {what} lists are "
                                 f"missing under {root}: {named}{more}")
