"""`format: cub`: CUB-200-2011 as its archive extracts (SPEC section 5): images.txt,
image_class_labels.txt, train_test_split.txt, classes.txt, images/<class_dir>/, and the
class x attribute matrix under attributes/."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.cub import read_cub_attributes, read_cub_classes, read_cub_images
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.reference_names import ReferenceList
from pipeline.data.settings import TargetSettings


class CubTarget(TargetSettings):
    """CUB-200-2011's layout; class names are the folder names without their number, or CBD's
    (data.target.names)."""

    reference_names = ReferenceList("cub_cbd.txt", "CBD's",
                                    "the keys of CBD's descriptors_cub.json")


@TARGET_FORMATS.register("cub", settings=CubTarget)
def read_cub(data_root: Path, settings: CubTarget) -> TargetDataset:
    """CUB-200-2011's images, classes and class attributes."""
    root = Path(data_root) / settings.path
    return TargetDataset(read_cub_images(root), read_cub_classes(root), read_cub_attributes(root))
