"""The target formats that name their images in list files (issue 22): Oxford-IIIT Pet,
Flowers-102, FGVC-Aircraft, Food-101 and Stanford Cars, each read from a small tree the test
makes in the dataset's real layout (the `.mat` files written by scipy in the structures the real
files have), with the index it gives, what it leaves out, and what it refuses."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.io import savemat

from conftest import REPO, jpeg, lines, run_by_hand
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import IMAGE_COLUMNS, TARGET_FORMATS


def pets_tree(root: Path) -> Path:
    """images/ and annotations/ as Oxford-IIIT Pet's two archives extract (3 of its 37 breeds),
    with what the real images/ also holds: .mat files, and an image no list names."""
    lines(root / "annotations" / "trainval.txt", "Abyssinian_1 1 1 1", "Abyssinian_2 1 1 1",
          "american_bulldog_10 2 2 1", "american_bulldog_11 2 2 1",
          "staffordshire_bull_terrier_3 3 2 2")
    lines(root / "annotations" / "test.txt", "Abyssinian_3 1 1 1", "american_bulldog_12 2 2 1",
          "staffordshire_bull_terrier_4 3 2 2")
    lines(root / "annotations" / "list.txt", "#Image CLASS-ID SPECIES BREED ID",
          "Abyssinian_1 1 1 1")  # the archive's full list: not read
    for name in ("Abyssinian_1", "Abyssinian_2", "Abyssinian_3", "Abyssinian_99",
                 "american_bulldog_10", "american_bulldog_11", "american_bulldog_12",
                 "staffordshire_bull_terrier_3", "staffordshire_bull_terrier_4"):
        jpeg(root / "images" / f"{name}.jpg")
    savemat(root / "images" / "Abyssinian_100.mat", {"x": np.zeros((1, 1))})
    return root


def flowers_tree(root: Path) -> Path:
    """jpg/, imagelabels.mat and setid.mat (1 x N vectors, as the real files), 7 images of
    classes 1-3; image 7 is in no set."""
    for number in range(1, 8):
        jpeg(root / "jpg" / f"image_{number:05d}.jpg")
    savemat(root / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2, 3, 3, 1]], dtype=float)})
    savemat(root / "setid.mat", {"trnid": np.array([[1, 3]], dtype=np.uint16),
                                 "valid": np.array([[5]], dtype=np.uint16),
                                 "tstid": np.array([[2, 4, 6]], dtype=np.uint16)})
    return root


AIRCRAFT_LISTS = {
    "train": ["1025794 Falcon 2000", "0034309 F/A-18"], "val": ["1340192 707-320"],
    "test": ["0056978 Falcon 2000", "1514522 F/A-18", "2222222 707-320"]}


def aircraft_tree(root: Path) -> Path:
    """fgvc-aircraft-2013b/data/ as the archive extracts: 3 variants (not in sorted order),
    their lists, the family lists and the trainval list (neither read), an unlisted image."""
    data = root / "data"
    lines(data / "variants.txt", "Falcon 2000", "707-320", "F/A-18")
    for split, rows in AIRCRAFT_LISTS.items():
        lines(data / f"images_variant_{split}.txt", *rows)
        for row in rows:
            jpeg(data / "images" / f"{row.split()[0]}.jpg")
    lines(data / "images_variant_trainval.txt", *AIRCRAFT_LISTS["train"], *AIRCRAFT_LISTS["val"])
    lines(data / "families.txt", "Boeing 707", "Dassault Falcon 2000", "F/A-18")
    jpeg(data / "images" / "9999999.jpg")
    return root


def food_tree(root: Path) -> Path:
    """food-101/ as the archive extracts: images/<class>/, meta/ (3 of its 101 classes)."""
    lines(root / "meta" / "classes.txt", "apple_pie", "baby_back_ribs", "huevos_rancheros")
    lines(root / "meta" / "labels.txt", "Apple pie", "Baby back ribs", "Huevos rancheros")
    train = ["apple_pie/1005649", "apple_pie/1014775", "baby_back_ribs/1000101",
             "huevos_rancheros/1001445"]
    test = ["apple_pie/1011328", "baby_back_ribs/1004234", "huevos_rancheros/1002374"]
    lines(root / "meta" / "train.txt", *train)
    lines(root / "meta" / "test.txt", *test)
    for rel in train + test + ["apple_pie/9999999"]:
        jpeg(root / "images" / f"{rel}.jpg")
    return root


CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Ram C/V Cargo Van Minivan 2012"]


def car_annotations(path: Path, rows: list[tuple[int, str]]) -> None:
    """A struct array `annotations` (1 x N) with the devkit's fields."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    annotations = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, (label, fname) in enumerate(rows):
        annotations[0, i] = (np.uint16(1), np.uint16(2), np.uint16(3), np.uint16(4),
                             np.uint8(label), fname)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"annotations": annotations})


def cars_tree(root: Path, test_labels: str = "cars_test_annos_withlabels.mat") -> Path:
    """cars_train/, cars_test/, devkit/ (car_devkit.tgz, with its unlabelled test file) and the
    labelled test annotations; the same file names in both folders, as the real set has."""
    names = np.empty((1, len(CAR_NAMES)), dtype=object)
    names[0, :] = CAR_NAMES
    (root / "devkit").mkdir(parents=True)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    car_annotations(root / "devkit" / "cars_train_annos.mat",
                    [(1, "00001.jpg"), (2, "00002.jpg"), (3, "00003.jpg"), (1, "00004.jpg")])
    car_annotations(root / test_labels, [(3, "00001.jpg"), (2, "00002.jpg"), (1, "00003.jpg")])
    car_annotations(root / "devkit" / "cars_test_annos.mat", [(1, "00001.jpg")])
    for folder, count in (("cars_train", 5), ("cars_test", 3)):  # cars_train/00005: unlisted
        for number in range(1, count + 1):
            jpeg(root / folder / f"{number:05d}.jpg")
    return root


def test_the_trees_mat_files_have_the_real_files_structures(tmp_path):
    """As CoOp indexes into them, unsqueezed: 1 x N vectors, a 1 x N cell array of names, a
    1 x N struct array of annotations whose fields are 1 x 1 numbers and a string."""
    from scipy.io import loadmat

    flowers, cars = flowers_tree(tmp_path / "flowers"), cars_tree(tmp_path / "cars")
    assert loadmat(flowers / "imagelabels.mat")["labels"].shape == (1, 7)
    assert loadmat(flowers / "setid.mat")["tstid"][0].tolist() == [2, 4, 6]
    annotations = loadmat(cars / "devkit" / "cars_train_annos.mat")["annotations"][0]
    assert set(annotations.dtype.names) == {"bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2",
                                            "class", "fname"}
    assert (annotations[3]["fname"][0], annotations[3]["class"][0, 0]) == ("00004.jpg", 1)
    assert loadmat(cars / "devkit" / "cars_meta.mat")["class_names"][0][2][0] == CAR_NAMES[2]


TREES = {"oxford_pets": pets_tree, "flowers102": flowers_tree, "fgvc_aircraft": aircraft_tree,
         "food101": food_tree, "stanford_cars": cars_tree}


def read(name: str, data_root: Path, path: str = "target"):
    entry = TARGET_FORMATS.entry(name)
    return entry.value(data_root, entry.settings(format=name, path=path))


def made(name: str, tmp_path: Path):
    """The format's tree under tmp_path/target, and what its reader makes of it."""
    TREES[name](tmp_path / "target")
    return read(name, tmp_path)


def check_index(target, rows: list[tuple[str, int, str]]) -> None:
    """The image table is `rows` ((path, class id, split), in path order), ids 1..N, each
    row's class name its class's, in the index schema."""
    images = target.images
    assert list(images.columns) == IMAGE_COLUMNS
    assert list(zip(images["path"], images["class_id"], images["split"])) == rows
    assert images["image_id"].tolist() == list(range(1, len(rows) + 1))
    assert (images["image_id"].dtype, images["class_id"].dtype) == (np.int64, np.int32)
    names = target.classes.set_index("class_id")["class_name"]
    assert images["class_name"].tolist() == names[images["class_id"]].tolist()
    assert target.classes["class_id"].tolist() == list(range(1, len(target.classes) + 1))
    assert target.attributes is None


def test_oxford_pets_breeds_are_named_as_torchvision_names_them(tmp_path):
    target = made("oxford_pets", tmp_path)
    assert target.classes.to_dict("list") == {
        "class_id": [1, 2, 3], "class_dir": ["Abyssinian", "american_bulldog",
                                             "staffordshire_bull_terrier"],
        "class_name": ["Abyssinian", "American Bulldog", "Staffordshire Bull Terrier"]}
    check_index(target, [  # Abyssinian_99 and the .mat file: in no list, not indexed
        ("images/Abyssinian_1.jpg", 1, "train"), ("images/Abyssinian_2.jpg", 1, "train"),
        ("images/Abyssinian_3.jpg", 1, "test"), ("images/american_bulldog_10.jpg", 2, "train"),
        ("images/american_bulldog_11.jpg", 2, "train"),
        ("images/american_bulldog_12.jpg", 2, "test"),
        ("images/staffordshire_bull_terrier_3.jpg", 3, "train"),
        ("images/staffordshire_bull_terrier_4.jpg", 3, "test")])


def test_oxford_pets_skips_comment_lines_and_refuses_a_class_id_of_two_breeds(tmp_path):
    root = pets_tree(tmp_path / "target")
    trainval = root / "annotations" / "trainval.txt"
    trainval.write_text("#Image CLASS-ID SPECIES BREED ID\n" + trainval.read_text())
    assert len(read("oxford_pets", tmp_path).images) == 8
    trainval.write_text(trainval.read_text() + "Bengal_1 1 1 2\n")
    with pytest.raises(DatasetLayoutError) as error:
        read("oxford_pets", tmp_path)
    assert str(error.value) == (f"{trainval}: line 7: class 1 is 'Bengal' here and 'Abyssinian' "
                                f"({trainval}: line 2)")


def test_flowers102_reads_setid_with_the_shipped_names(tmp_path):
    target = made("flowers102", tmp_path)
    assert len(target.classes) == 102  # the dataset's classes, whether a tree has images of all
    assert target.classes["class_name"].tolist()[:3] == [
        "pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
    assert target.classes["class_name"].iloc[-1] == "blackberry lily"
    assert target.classes["class_dir"].tolist()[:3] == ["1", "2", "3"]
    check_index(target, [  # trnid and valid: train; image 7 is in no set, not indexed
        ("jpg/image_00001.jpg", 1, "train"), ("jpg/image_00002.jpg", 1, "test"),
        ("jpg/image_00003.jpg", 2, "train"), ("jpg/image_00004.jpg", 2, "test"),
        ("jpg/image_00005.jpg", 3, "train"), ("jpg/image_00006.jpg", 3, "test")])


def test_the_flower_names_are_the_102_of_coop(tmp_path):
    from pipeline.data.formats.flowers102 import flower_names

    names = flower_names()
    assert len(names) == len(set(names)) == 102
    assert names[77] == "lotus lotus" and names[45] == "wallflower"  # cat_to_name.json's 78, 46


@pytest.mark.parametrize("layout", ["archive", "data folder"])
def test_fgvc_aircraft_keeps_variants_order_and_names(tmp_path, layout):
    aircraft_tree(tmp_path / "target")
    target = read("fgvc_aircraft", tmp_path, "target" if layout == "archive" else "target/data")
    assert target.classes["class_name"].tolist() == ["Falcon 2000", "707-320", "F/A-18"]
    assert target.classes["class_dir"].tolist() == ["Falcon 2000", "707-320", "F/A-18"]
    prefix = "data/images" if layout == "archive" else "images"
    check_index(target, [(f"{prefix}/{image}.jpg", class_id, split) for image, class_id, split in [
        ("0034309", 3, "train"), ("0056978", 1, "test"), ("1025794", 1, "train"),
        ("1340192", 2, "train"), ("1514522", 3, "test"), ("2222222", 2, "test")]])


def test_food101_reads_the_meta_lists(tmp_path):
    target = made("food101", tmp_path)
    assert target.classes.to_dict("list") == {
        "class_id": [1, 2, 3], "class_dir": ["apple_pie", "baby_back_ribs", "huevos_rancheros"],
        "class_name": ["apple pie", "baby back ribs", "huevos rancheros"]}
    check_index(target, [  # apple_pie/9999999 is in no list
        ("images/apple_pie/1005649.jpg", 1, "train"), ("images/apple_pie/1011328.jpg", 1, "test"),
        ("images/apple_pie/1014775.jpg", 1, "train"),
        ("images/baby_back_ribs/1000101.jpg", 2, "train"),
        ("images/baby_back_ribs/1004234.jpg", 2, "test"),
        ("images/huevos_rancheros/1001445.jpg", 3, "train"),
        ("images/huevos_rancheros/1002374.jpg", 3, "test")])


@pytest.mark.parametrize("test_labels", ["cars_test_annos_withlabels.mat",
                                         "devkit/cars_test_annos_withlabels.mat"])
def test_stanford_cars_reads_the_devkit(tmp_path, test_labels):
    cars_tree(tmp_path / "target", test_labels)
    target = read("stanford_cars", tmp_path)
    assert target.classes.to_dict("list") == {
        "class_id": [1, 2, 3], "class_dir": ["1", "2", "3"], "class_name": CAR_NAMES}
    check_index(target, [  # cars_train/00005.jpg is in no annotations file
        ("cars_test/00001.jpg", 3, "test"), ("cars_test/00002.jpg", 2, "test"),
        ("cars_test/00003.jpg", 1, "test"), ("cars_train/00001.jpg", 1, "train"),
        ("cars_train/00002.jpg", 2, "train"), ("cars_train/00003.jpg", 3, "train"),
        ("cars_train/00004.jpg", 1, "train")])


# A file each layout needs, removed: one error naming it (key: data.target.path).
NEEDED = {"oxford_pets": ["annotations/trainval.txt", "annotations/test.txt"],
          "flowers102": ["imagelabels.mat", "setid.mat"],
          "fgvc_aircraft": ["data/variants.txt", "data/images_variant_val.txt"],
          "food101": ["meta/classes.txt", "meta/test.txt"],
          "stanford_cars": ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat"]}


@pytest.mark.parametrize("name, file", [(n, f) for n, files in NEEDED.items() for f in files])
def test_a_missing_file_is_one_error_naming_it(tmp_path, name, file):
    root = TREES[name](tmp_path / "target")
    (root / file).unlink()
    with pytest.raises(DatasetLayoutError) as error:
        read(name, tmp_path)
    assert error.value.key == "path"
    assert str(error.value).startswith(f"missing file {root / file} (")


def test_stanford_cars_without_test_labels_says_they_are_a_download_of_their_own(tmp_path):
    root = cars_tree(tmp_path / "target")
    (root / "cars_test_annos_withlabels.mat").unlink()
    with pytest.raises(DatasetLayoutError, match="test labels, a download of their own") as error:
        read("stanford_cars", tmp_path)
    assert str(error.value).startswith(f"missing file {root / 'cars_test_annos_withlabels.mat'}")


def listed_again(name: str, root: Path) -> tuple[str, str]:
    """List a train image once more, in the test list where the layout can (not Stanford
    Cars': its two folders hold different images of one name); (the file, what is said)."""
    if name == "flowers102":
        savemat(root / "setid.mat", {"trnid": np.array([[1, 3]]), "valid": np.array([[5]]),
                                     "tstid": np.array([[2, 4, 6, 3]])})
        return (f"{root / 'setid.mat'}: tstid[3]: 'jpg/image_00003.jpg' is listed as train "
                f"({root / 'setid.mat'}: trnid[1]) and as test here: an image in both splits")
    if name == "stanford_cars":
        file = root / "devkit" / "cars_train_annos.mat"
        car_annotations(file, [(1, "00001.jpg"), (2, "00002.jpg"), (1, "00001.jpg")])
        return (f"{file}: annotation 3: 'cars_train/00001.jpg' is listed already ({file}: "
                "annotation 1): it would count twice")
    train, test, image = {
        "oxford_pets": ("annotations/trainval.txt", "annotations/test.txt",
                        "images/Abyssinian_1.jpg"),
        "fgvc_aircraft": ("data/images_variant_train.txt", "data/images_variant_test.txt",
                          "data/images/1025794.jpg"),
        "food101": ("meta/train.txt", "meta/test.txt", "images/apple_pie/1005649.jpg")}[name]
    first = (root / train).read_text().splitlines()[0]
    (root / test).write_text((root / test).read_text() + first + "\n")
    count = len((root / test).read_text().splitlines())
    return (f"{root / test}: line {count}: {image!r} is listed as train ({root / train}: line 1) "
            "and as test here: an image in both splits leaks test images into training")


@pytest.mark.parametrize("name", list(TREES))
def test_an_image_listed_twice_is_refused_naming_both_places(tmp_path, name):
    root = TREES[name](tmp_path / "target")
    said = listed_again(name, root)
    with pytest.raises(DatasetLayoutError) as error:
        read(name, tmp_path)
    assert str(error.value).startswith(said)


MISSING = {"oxford_pets": "images/american_bulldog_12.jpg", "flowers102": "jpg/image_00005.jpg",
           "fgvc_aircraft": "data/images/0034309.jpg",
           "food101": "images/baby_back_ribs/1000101.jpg", "stanford_cars": "cars_test/00002.jpg"}


@pytest.mark.parametrize("name", list(TREES))
def test_a_listed_image_that_is_missing_is_named(tmp_path, name):
    root = TREES[name](tmp_path / "target")
    (root / MISSING[name]).unlink()
    with pytest.raises(DatasetLayoutError, match=f"1 of the .* images .* lists are missing "
                                                 f"under {root}: {MISSING[name]}$"):
        read(name, tmp_path)


def test_a_listed_path_outside_the_folder_is_refused(tmp_path):
    root = food_tree(tmp_path / "target")
    (root / "meta" / "test.txt").write_text("apple_pie/../../../elsewhere\n")
    with pytest.raises(DatasetLayoutError) as error:
        read("food101", tmp_path)
    assert str(error.value) == (f"{root / 'meta' / 'test.txt'}: line 1: "
                                f"'images/apple_pie/../../../elsewhere.jpg' is not a path under "
                                f"{root} (absolute, or climbing out with '..')")


@pytest.mark.parametrize("name, damage, said", [
    ("fgvc_aircraft", ("data/images_variant_test.txt", "0056978 Falcon 900"),
     "line 1: 'Falcon 900' is not a variant of"),
    ("food101", ("meta/test.txt", "apple_pies/1011328"), "line 1: class 'apple_pies' is not in"),
    ("oxford_pets", ("annotations/test.txt", "Abyssinian_3 1"),
     "line 1: expected '<breed>_<number> <class id> <species> <breed id>', got 'Abyssinian_3 1'"),
])
def test_a_line_naming_no_known_class_is_refused(tmp_path, name, damage, said):
    root = TREES[name](tmp_path / "target")
    (root / damage[0]).write_text(damage[1] + "\n")
    with pytest.raises(DatasetLayoutError) as error:
        read(name, tmp_path)
    assert str(error.value).startswith(f"{root / damage[0]}: {said}")


def test_a_class_number_beyond_the_names_is_refused(tmp_path):
    root = cars_tree(tmp_path / "target")
    car_annotations(root / "cars_test_annos_withlabels.mat", [(4, "00001.jpg")])
    with pytest.raises(DatasetLayoutError, match="annotation 1: class 4 is not one of the 3"):
        read("stanford_cars", tmp_path)
    root = flowers_tree(tmp_path / "flowers")
    savemat(root / "imagelabels.mat", {"labels": np.array([[1, 103]], dtype=float)})
    with pytest.raises(DatasetLayoutError, match="labels go up to 103; Flowers-102 has 102"):
        read("flowers102", tmp_path, "flowers")


def test_a_mat_file_without_its_variable_names_what_it_has(tmp_path):
    root = flowers_tree(tmp_path / "target")
    savemat(root / "setid.mat", {"trnid": np.array([[1]]), "tstid": np.array([[2]])})
    with pytest.raises(DatasetLayoutError) as error:
        read("flowers102", tmp_path)
    assert str(error.value) == f"{root / 'setid.mat'}: no variable 'valid' (it has: trnid, tstid)"
    (root / "setid.mat").write_bytes(b"")  # a download cut short
    with pytest.raises(DatasetLayoutError, match="setid.mat: not a MATLAB file scipy reads"):
        read("flowers102", tmp_path)


@pytest.mark.parametrize("name", list(TREES))
def test_the_formats_are_params_entries_with_no_keys_of_their_own(name):
    from stages.params import ParamsError, validate_params

    params = validate_params({"data": {"captions": None, "target": {
        "format": name, "path": "x"}}}, "params")
    assert params.data.target.format == name
    with pytest.raises(ParamsError, match="data.target.split_file: unknown key"):
        validate_params({"data": {"captions": None, "target": {
            "format": name, "path": "x", "split_file": "s.txt"}}}, "params")


def test_the_data_stage_indexes_an_oxford_pets_tree(tmp_path):
    """`fgvc data` on Oxford-IIIT Pet's layout beside a small COCO (the data stage reads both),
    and a missing list named with its params key."""
    from pipeline.common import InputError
    from pipeline.data import Data, DemoWorldSpec, generate_demo_world, index_datasets

    data = tmp_path / "data"
    generate_demo_world(data, DemoWorldSpec(num_classes=2, train_per_class=1, test_per_class=1,
                                            coco_images=100, image_size=32), show_progress=False)
    pets_tree(data / "oxford_pets")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(demo={}, root=str(data), captions=None,
                          target={"format": "oxford_pets", "path": "oxford_pets"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = run_by_hand(tmp_path, "data", "--params", str(tmp_path / "params.yaml"),
                         "--out", str(tmp_path / "index"))
    assert "oxford_pets: 8 images (5 train, 3 test) in 3 classes, all present" in output
    images = pd.read_parquet(tmp_path / "index" / "target_images.parquet")
    assert images["class_name"].value_counts().to_dict() == {
        "Abyssinian": 3, "American Bulldog": 3, "Staffordshire Bull Terrier": 2}
    (data / "oxford_pets" / "annotations" / "test.txt").unlink()
    settings = Data.model_validate(params["data"])
    with pytest.raises(InputError) as error:
        index_datasets(settings)
    assert str(error.value).startswith(
        f"data.target.path: missing file {data / 'oxford_pets' / 'annotations' / 'test.txt'} (")
