"""`format: fgvc_aircraft`: FGVC-Aircraft 2013b's `data/` folder as fgvc-aircraft-2013b.tar.gz
extracts it: `variants.txt` (the 100 variants, one a line), `images_variant_{train,val,test}.txt`
(lines '<image id> <variant>', the variant possibly with spaces and slashes: '0034309 F/A-18')
and `images/<image id>.jpg`; train + val 6,667, test 3,333, as torchvision's FGVCAircraft and
CoOp read them. Train and val are our train split.

data.target.path is the archive's folder (`fgvc-aircraft-2013b`, holding `data/`) or the
`data/` folder itself (CoOp's `fgvc_aircraft/`). Class ids are variants.txt's order; the names
are kept exactly as it writes them; class_dir is the same name."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.listed import Listed, class_list, class_table, index_listed, list_lines
from pipeline.data.reference_names import CLIP_PROMPTS, ReferenceList
from pipeline.data.settings import TargetSettings

LAYOUT = ("FGVC-Aircraft: fgvc-aircraft-2013b.tar.gz extracted in data.target.path, or its data/ "
          "folder as data.target.path")
LISTS = {"images_variant_train.txt": "train", "images_variant_val.txt": "train",
         "images_variant_test.txt": "test"}


class FgvcAircraftTarget(TargetSettings):
    """FGVC-Aircraft 2013b's data/ folder, by variant; train + val is the train split."""

    reference_names = ReferenceList("fgvc_aircraft_clip.txt", "CLIP's", CLIP_PROMPTS)


@TARGET_FORMATS.register("fgvc_aircraft", settings=FgvcAircraftTarget)
def read_fgvc_aircraft(data_root: Path, settings: FgvcAircraftTarget) -> TargetDataset:
    """FGVC-Aircraft's listed images and its variants; no attributes."""
    root = Path(data_root) / settings.path
    data = "data/" if (root / "data").is_dir() else ""  # the archive's folder, or data/ itself
    ids = class_list(root / data / "variants.txt", LAYOUT, "variant")
    variants = list(ids)
    listed = []
    for file, split in LISTS.items():
        path = root / data / file
        for number, line in list_lines(path, LAYOUT):
            image, _, variant = line.partition(" ")  # torchvision's split(" ", 1)
            variant, where = variant.strip(), f"{path}: line {number}"
            if not variant:
                raise DatasetLayoutError(f"{where}: expected '<image id> <variant>', got "
                                         f"{line!r}", key="path")
            if variant not in ids:
                raise DatasetLayoutError(f"{where}: {variant!r} is not a variant of "
                                         f"{root / data / 'variants.txt'}", key="path")
            listed.append(Listed(f"{data}images/{image}.jpg", ids[variant], split, where))
    classes = class_table(variants, variants)
    images = index_listed(root, listed, classes, f"{data}images_variant_{{train,val,test}}.txt")
    return TargetDataset(images, classes, None)
