"""`format: stanford_cars`: Stanford Cars in its devkit layout, as torchvision's StanfordCars
and CoOp read it: `cars_train/` and `cars_test/` (the images), `devkit/cars_meta.mat`
(`class_names`: the 196 models), `devkit/cars_train_annos.mat` and
`cars_test_annos_withlabels.mat` (beside `devkit/`, as torchvision and CoOp place it, or inside
it): struct arrays `annotations` with fields bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1-196)
and fname; 8,144 train, 8,041 test. The devkit's own cars_test_annos.mat has no classes.

Class ids are cars_meta.mat's order; names are kept as it writes them ('AM General Hummer SUV
2000'; CoOp moves the year first); class_dir is the class's number."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.coop_split import CoopLayout, read_coop_split
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import TARGET_FORMATS, TargetDataset
from pipeline.data.listed import Listed, class_table, index_listed, mat_ids, read_mat
from pipeline.data.reference_names import CLIP_PROMPTS, ReferenceList
from pipeline.data.settings import CoopSplitTarget

LAYOUT = ("Stanford Cars' devkit layout in data.target.path: cars_train/, cars_test/, devkit/ "
          "(car_devkit.tgz) and cars_test_annos_withlabels.mat")
TEST_ANNOTATIONS = "cars_test_annos_withlabels.mat"


class StanfordCarsTarget(CoopSplitTarget):
    """Stanford Cars' devkit layout (cars_train/, cars_test/, devkit/, test labels); or CoOp's
    split_zhou_StanfordCars.json gives train/val/test (only cars_meta.mat is read then)."""

    reference_names = ReferenceList("stanford_cars_clip.txt", "CLIP's", CLIP_PROMPTS)


def year_first(name: str) -> str:
    """'AM General Hummer SUV 2000' -> '2000 AM General Hummer SUV', as CoOp names the cars."""
    words = name.split(" ")
    return " ".join([words[-1], *words[:-1]])


COOP = CoopLayout("", lambda row: year_first(row.class_name))  # paths: cars_train/00001.jpg


def _annotations(path: Path, folder: str, split: str) -> list[Listed]:
    """The images of one annotations file (struct array `annotations`: class, fname)."""
    records = read_mat(path, LAYOUT, "annotations")["annotations"]
    fields = records.dtype.names or ()
    absent = [f for f in ("class", "fname") if f not in fields]
    if absent:
        raise DatasetLayoutError(f"{path}: annotations have no field {absent[0]!r} (they have: "
                                 f"{', '.join(fields) or 'none'})", key="path")
    labels = mat_ids(path, "annotations.class", [record["class"] for record in records])
    return [Listed(f"{folder}/{record['fname']}", label, split, f"{path}: annotation {i + 1}")
            for i, (record, label) in enumerate(zip(records, labels))]


@TARGET_FORMATS.register("stanford_cars", settings=StanfordCarsTarget)
def read_stanford_cars(data_root: Path, settings: StanfordCarsTarget) -> TargetDataset:
    """Stanford Cars' annotated images and its 196 models; no attributes."""
    root = Path(data_root) / settings.path
    meta = root / "devkit" / "cars_meta.mat"
    names = [str(name) for name in read_mat(meta, LAYOUT, "class_names")["class_names"]]
    classes = class_table([str(i) for i in range(1, len(names) + 1)], names)
    if settings.coop_split:
        return TargetDataset(*read_coop_split(root, settings.coop_split, classes, COOP), None)
    test = next((p for p in (root / TEST_ANNOTATIONS, root / "devkit" / TEST_ANNOTATIONS)
                 if p.is_file()), None)
    if test is None:  # a download of its own, beside car_devkit.tgz's devkit/
        raise DatasetLayoutError(f"missing file {root / TEST_ANNOTATIONS} (or in devkit/): the "
                                 "test labels, a download of their own (devkit/"
                                 "cars_test_annos.mat has no classes)", key="path")
    listed = (_annotations(root / "devkit" / "cars_train_annos.mat", "cars_train", "train")
              + _annotations(test, "cars_test", "test"))
    images = index_listed(root, listed, classes,
                          f"devkit/cars_train_annos.mat and {test.relative_to(root)}")
    return TargetDataset(images, classes, None)
