"""`format: oxford_pets`: Oxford-IIIT Pet as its images.tar.gz and annotations.tar.gz extract:
`images/<name>.jpg` and `annotations/{trainval,test}.txt`, lines '<name> <class id> <species>
<breed id>' (37 breeds; 3,680 trainval, 3,669 test). Trainval is our train split.

Class ids are the lists' (1-37); names come from the image names, as torchvision's
OxfordIIITPet makes them: the name without its last '_<number>', each '_'-separated word
capitalised ('american_pit_bull_terrier_10' -> 'American Pit Bull Terrier'). Only listed
images are indexed: images/ also holds .mat files and a few images that no list names."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.coop_split import CoopLayout, read_coop_split
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.listed import Listed, class_table, index_listed, list_lines
from pipeline.data.reference_names import CLIP_PROMPTS, ReferenceList
from pipeline.data.settings import CoopSplitTarget

LAYOUT = "Oxford-IIIT Pet: images.tar.gz and annotations.tar.gz extracted in data.target.path"
LISTS = {"trainval.txt": "train", "test.txt": "test"}


class OxfordPetsTarget(CoopSplitTarget):
    """Oxford-IIIT Pet's layout (images/, annotations/); trainval is the train split, or
    CoOp's split_zhou_OxfordPets.json gives train/val/test."""

    reference_names = ReferenceList("oxford_pets_clip.txt", "CLIP's", CLIP_PROMPTS)


# CoOp: paths under images/, breeds as the image names write them, lower case
COOP = CoopLayout("images/", lambda row: row.class_dir.lower())


def breed_name(breed: str) -> str:
    """'american_pit_bull_terrier' (image names' prefix) -> 'American Pit Bull Terrier', as
    torchvision's OxfordIIITPet names its classes."""
    return " ".join(word.title() for word in breed.split("_"))


@TARGET_FORMATS.register("oxford_pets", settings=OxfordPetsTarget)
def read_oxford_pets(data_root: Path, settings: OxfordPetsTarget) -> TargetDataset:
    """Oxford-IIIT Pet's listed images and its 37 breeds; no attributes."""
    root = Path(data_root) / settings.path
    listed, breeds = [], {}  # class id -> (breed as the image names write it, where first)
    for file, split in LISTS.items():
        path = root / "annotations" / file
        for number, line in list_lines(path, LAYOUT):
            fields = line.split()
            if len(fields) != 4 or not fields[1].isdigit() or "_" not in fields[0]:
                raise DatasetLayoutError(f"{path}: line {number}: expected '<breed>_<number> "
                                         f"<class id> <species> <breed id>', got {line!r}",
                                         key="path")
            name, class_id = fields[0], int(fields[1])
            where = f"{path}: line {number}"
            breed = name.rsplit("_", 1)[0]
            seen = breeds.setdefault(class_id, (breed, where))
            if seen[0] != breed:
                raise DatasetLayoutError(f"{where}: class {class_id} is {breed!r} here and "
                                         f"{seen[0]!r} ({seen[1]})", key="path")
            listed.append(Listed(f"images/{name}.jpg", class_id, split, where))
    ids = sorted(breeds)
    if ids != list(range(1, len(ids) + 1)):
        raise DatasetLayoutError(f"{root / 'annotations'}: the lists' class ids are not 1 to "
                                 f"{len(ids)} (they give {', '.join(map(str, ids[:40]))})",
                                 key="path")
    classes = class_table([breeds[i][0] for i in ids],
                          [breed_name(breeds[i][0]) for i in ids])
    if settings.coop_split:
        return TargetDataset(*read_coop_split(root, settings.coop_split, classes, COOP), None)
    images = index_listed(root, listed, classes, "annotations/{trainval,test}.txt")
    return TargetDataset(images, classes, None)
