"""`format: imagefolder`: `<class>/<image>` folders (torchvision's ImageFolder layout), for any
set that is not CUB-shaped: `train/` and `test/` under the target's folder, or one folder of
classes with a split file. No attribute annotations."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.imagefolder import read_imagefolder
from pipeline.data.settings import TargetSettings, inside


class ImageFolderTarget(TargetSettings):
    """Class folders; the split from train/ and test/, or from a split file."""

    split_file: str | None = Field(None, description="lines '<image path> <train|test>', "
                                   "paths under path, the file under data.root; null: "
                                   "path/train/ and path/test/")
    class_names: str | None = Field(None, description="lines '<folder> <name>', under "
                                    "data.root; null: the folder names (_ read as a space)")

    @field_validator("split_file", "class_names")
    @classmethod
    def _inside_root(cls, value: str | None) -> str | None:
        inside(value, "data.root")
        return value


@TARGET_FORMATS.register("imagefolder", settings=ImageFolderTarget)
def read_folders(data_root: Path, settings: ImageFolderTarget) -> TargetDataset:
    """Class folders as a target: images and classes, no attributes."""
    files = {}
    for key in ("split_file", "class_names"):
        named = getattr(settings, key)
        if named and not (Path(data_root) / named).is_file():
            raise DatasetLayoutError(f"{Path(data_root) / named} is not a file", key=key)
        files[key] = Path(data_root) / named if named else None
    hidden: list[Path] = []
    images, classes = read_imagefolder(Path(data_root) / settings.path, **files, hidden=hidden)
    notes = [f"skipped {len(hidden)} hidden file(s) (a leading '.', as macOS's ._ twins), e.g. "
             f"{hidden[0]}"] if hidden else []
    return TargetDataset(images, classes, None, notes)
