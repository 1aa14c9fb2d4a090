"""Class names as the references wrote them (issue 22, item 3; `pipeline.data.reference_names`):
the shipped lists (CBD's CUB keys, CLIP's prompts.md lists), a CUB-layout tree of real CUB class
folders named as CBD names them, a suite format's reader names met by CLIP's by name (not by
position), the fallback to the dataset's own names (the demo's made-up birds, an ImageFolder),
the list recorded in the index and said in the report, and the errors."""

import html
import json

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_by_hand
from pipeline.common import InputError, normalize_name, read_parquet_with_metadata
from pipeline.data.formats import TARGET_FORMATS
from pipeline.data.reference_names import METADATA_KEY, choose_class_names
from test_dataset_formats import aircraft_tree, cars_tree, flowers_tree, food_tree, jpeg, lines

# Real CUB-200-2011 classes (classes.txt's lines) and how CBD's descriptors_cub.json keys them.
CUB_CLASSES = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross",
               22: "022.Chuck_will_Widow", 159: "159.Black_and_white_Warbler"}
CBD_NAMES = {1: "Black-footed Albatross", 2: "Laysan Albatross", 22: "Chuck-will Widow",
             159: "Black-and-white Warbler"}
FOLDER_NAMES = {1: "Black footed Albatross", 2: "Laysan Albatross", 22: "Chuck will Widow",
                159: "Black and white Warbler"}

# Oxford-IIIT Pet's 37 breeds as its image names write them, in its class-id order (1-37).
PET_BREEDS = [
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "Bengal", "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees",
    "havanese", "japanese_chin", "keeshond", "leonberger", "Maine_Coon", "miniature_pinscher",
    "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
    "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier"]


def cub_tree(root, classes: dict[int, str], per_class: int = 2):
    """CUB_200_2011/ as its archive extracts, with the given classes.txt lines (id -> folder),
    `per_class` images each (the first train, the others test), and one attribute."""
    ids = list(classes)
    lines(root / "classes.txt", *(f"{i} {d}" for i, d in classes.items()))
    lines(root / "attributes" / "attributes.txt", "1 has_bill_shape::curved_(up_or_down)")
    lines(root / "attributes" / "class_attribute_labels_continuous.txt", *(["50.0"] * len(ids)))
    images, labels, split, image_id = [], [], [], 0
    for class_id in ids:
        for k in range(per_class):
            image_id += 1
            rel = f"{classes[class_id]}/{classes[class_id].split('.', 1)[1]}_{k}.jpg"
            jpeg(root / "images" / rel)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            split.append(f"{image_id} {int(k == 0)}")
    lines(root / "images.txt", *images)
    lines(root / "image_class_labels.txt", *labels)
    lines(root / "train_test_split.txt", *split)
    return root


REFERENCE_LISTS = {name: TARGET_FORMATS.entry(name).settings.reference_names
                   for name in TARGET_FORMATS.names()
                   if TARGET_FORMATS.entry(name).settings.reference_names}


def choose(classes: pd.DataFrame, fmt: str, names: str):
    """choose_class_names with the format's own list, as the data stage calls it."""
    return choose_class_names(classes, fmt, TARGET_FORMATS.entry(fmt).settings.reference_names,
                              names)


def read(fmt: str, data_root, path: str = "target"):
    settings = TARGET_FORMATS.validate_one({"format": fmt, "path": path}, "format")
    return TARGET_FORMATS.get(fmt)(data_root, settings)


def test_the_shipped_lists_have_each_datasets_class_count_and_no_name_twice():
    counts = {name: len(reference.names()) for name, reference in REFERENCE_LISTS.items()}
    assert counts == {"cub": 200, "oxford_pets": 37, "flowers102": 102, "food101": 101,
                      "stanford_cars": 196, "fgvc_aircraft": 100}
    for reference in REFERENCE_LISTS.values():  # names() refuses two that normalize alike
        assert len({normalize_name(n) for n in reference.names()}) == len(reference.names())


def test_the_cub_list_is_the_keys_of_cbds_real_file_and_meets_all_200_folders(shared_data):
    keys = list(json.loads((shared_data / "cbd" / "descriptors_cub.json").read_text()))
    assert REFERENCE_LISTS["cub"].names() == keys
    from pipeline.data.cub import read_cub_classes

    classes = read_cub_classes(shared_data / "CUB_200_2011_metadata")
    named = choose(classes, "cub", "auto")
    assert named.used == "CBD's (reference: the keys of CBD's descriptors_cub.json)"
    assert named.classes["class_name"].tolist() == keys  # met by name: here in the same order
    assert (named.classes["class_name"] != classes["class_name"]).sum() == 57  # the 57
    assert named.classes["class_dir"].tolist() == classes["class_dir"].tolist()


def test_a_cub_tree_of_real_classes_takes_cbds_names_and_keeps_its_folders(tmp_path):
    cub_tree(tmp_path / "target", CUB_CLASSES)
    target = read("cub", tmp_path)
    assert dict(zip(target.classes["class_id"], target.classes["class_name"])) == FOLDER_NAMES
    named = choose(target.classes, "cub", "reference")
    assert dict(zip(named.classes["class_id"], named.classes["class_name"])) == CBD_NAMES
    assert named.classes["class_dir"].tolist() == list(CUB_CLASSES.values())
    assert named.used.startswith("CBD's (reference")
    # 4 of CBD's 200: auto keeps the dataset's names (a subset is not CUB), and says why
    auto = choose(target.classes, "cub", "auto")
    assert auto.used is None and auto.classes is target.classes
    assert auto.notes == ["data.target.names: auto: the dataset's own class names, not CBD's "
                          "list (class_names/cub_cbd.txt): the target has 4 of its 200"]
    assert choose(target.classes, "cub", "dataset").classes is target.classes


def test_reference_where_classes_do_not_match_is_one_error_naming_the_first(tmp_path):
    made_up = {**CUB_CLASSES, 250: "250.White-headed_Black_Shrike",  # the demo's kind of name
               300: "300.Northern_Orange-headed_Brown_Warbler"}
    cub_tree(tmp_path / "target", made_up, per_class=1)
    classes = read("cub", tmp_path).classes
    with pytest.raises(InputError) as error:
        choose(classes, "cub", "reference")
    assert str(error.value) == (
        "data.target.names: 'reference' asks for CBD's (reference: the keys of CBD's "
        "descriptors_cub.json), and 2 of the target's 6 classes are not in "
        "class_names/cub_cbd.txt: 250: White-headed Black Shrike, 300: Northern "
        "Orange-headed Brown Warbler")
    auto = choose(classes, "cub", "auto")  # some in common: named, not silent
    assert auto.used is None and auto.notes == [
        "data.target.names: auto: the dataset's own class names, not CBD's list "
        "(class_names/cub_cbd.txt): 2 of its 6 classes are not in it: 250: White-headed "
        "Black Shrike, 300: Northern Orange-headed Brown Warbler"]


def test_two_classes_that_read_as_one_reference_name_match_neither(tmp_path):
    classes = pd.DataFrame({"class_id": [1, 2], "class_dir": ["a", "b"],
                            "class_name": ["Black-footed Albatross", "Black footed albatross"]})
    with pytest.raises(InputError, match=r"2 of the target's 2 classes .*: 1: Black-footed "
                       r"Albatross, 2: Black footed albatross"):
        choose(classes, "cub", "reference")


def test_oxford_pets_breeds_meet_clips_names_by_name_not_position(tmp_path):
    root = tmp_path / "target"
    lines(root / "annotations" / "trainval.txt",
          *(f"{breed}_1 {i} {1 + breed[0].islower()} 1" for i, breed in enumerate(PET_BREEDS, 1)))
    lines(root / "annotations" / "test.txt",
          *(f"{breed}_2 {i} {1 + breed[0].islower()} 1" for i, breed in enumerate(PET_BREEDS, 1)))
    for breed in PET_BREEDS:
        jpeg(root / "images" / f"{breed}_1.jpg"), jpeg(root / "images" / f"{breed}_2.jpg")
    classes = read("oxford_pets", tmp_path).classes
    named = choose(classes, "oxford_pets", "auto")
    assert named.used == "CLIP's (reference: CLIP's data/prompts.md)"
    by_id = dict(zip(named.classes["class_id"], named.classes["class_name"]))
    clip = REFERENCE_LISTS["oxford_pets"].names()
    # class 2 is american_bulldog; CLIP's second name is 'Bengal' (its cats come first)
    assert (by_id[1], by_id[2], by_id[6], by_id[37]) == (
        "Abyssinian", "american bulldog", "Bengal", "yorkshire terrier")
    assert clip[1] == "Bengal" and sorted(by_id.values()) == sorted(clip)
    assert classes.set_index("class_id")["class_name"][2] == "American Bulldog"  # torchvision's
    assert named.classes["class_dir"].tolist() == PET_BREEDS


def test_flowers_clip_names_are_by_label_number_and_differ_from_coops_at_four(tmp_path):
    flowers_tree(tmp_path / "target")
    classes = read("flowers102", tmp_path).classes
    named = choose(classes, "flowers102", "auto")
    assert named.used == "CLIP's (reference: CLIP's data/prompts.md)"
    coop, clip = classes["class_name"].tolist(), named.classes["class_name"].tolist()
    assert clip == REFERENCE_LISTS["flowers102"].names()
    # the two lists are both in label order: they agree at 98 lines, 4 are renamings
    assert {i + 1: (a, b) for i, (a, b) in enumerate(zip(coop, clip)) if a != b} == {
        16: ("globe-flower", "globe flower"), 60: ("pink-yellow dahlia", "pink and yellow dahlia"),
        78: ("lotus lotus", "lotus"), 93: ("ball moss", "air plant")}


@pytest.mark.parametrize("fmt,tree,names", [
    ("food101", food_tree, ["apple pie", "baby back ribs", "huevos rancheros"]),
    ("stanford_cars", cars_tree, ["AM General Hummer SUV 2000", "Acura RL Sedan 2012",
                                  "Ram C/V Cargo Van Minivan 2012"]),
    ("fgvc_aircraft", aircraft_tree, ["Falcon 2000", "707-320", "F/A-18"])])
def test_a_few_of_a_suite_sets_classes_are_clips_under_reference_only(tmp_path, fmt, tree, names):
    tree(tmp_path / "target")
    classes = read(fmt, tmp_path).classes
    named = choose(classes, fmt, "reference")
    assert named.classes["class_name"].tolist() == names and named.used.startswith("CLIP's")
    auto = choose(classes, fmt, "auto")  # 3 of the set's classes: its own names
    assert auto.used is None and "the target has 3 of its" in auto.notes[0]


def test_an_imagefolder_has_no_reference_list(tmp_path):
    classes = pd.DataFrame({"class_id": [1], "class_dir": ["x"], "class_name": ["x"]})
    assert choose(classes, "imagefolder", "auto").used is None
    with pytest.raises(InputError) as error:
        choose(classes, "imagefolder", "reference")
    assert str(error.value) == (
        "data.target.names: 'reference' asks for a reference list of class names, and format "
        "'imagefolder' has none (the lists and their formats: class_names/README.md); use auto "
        "or dataset")


def test_names_is_a_validated_setting_of_every_format():
    from stages.params import ParamsError, validate_params

    for names in ("auto", "reference", "dataset"):
        params = validate_params({"data": {"target": {"format": "cub", "path": "x",
                                                      "names": names}}}, "params")
        assert params.data.target.names == names
    with pytest.raises(ParamsError, match=r"data.target.names: .*'auto', 'reference' or "
                       r"'dataset'"):
        validate_params({"data": {"target": {"format": "cub", "path": "x", "names": "cbd"}}},
                        "params")


def stage_project(tmp_path, target: dict, make) -> tuple:
    """A data.root with a small demo world (its COCO) and `make(data)`'s target, a params.yaml
    naming it."""
    from pipeline.data import DemoWorldSpec, generate_demo_world

    data = tmp_path / "data"
    generate_demo_world(data, DemoWorldSpec(num_classes=2, train_per_class=1, test_per_class=1,
                                            coco_images=100, image_size=32), show_progress=False)
    make(data)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(demo={}, root=str(data), captions=None, target=target)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return data, tmp_path / "params.yaml"


def test_the_data_stage_writes_cbds_names_and_records_the_list(tmp_path):
    data, params = stage_project(tmp_path, {"format": "cub", "path": "cub", "names": "reference"},
                                 lambda data: cub_tree(data / "cub", CUB_CLASSES))
    output = run_by_hand(tmp_path, "data", "--params", str(params), "--out", str(tmp_path / "i"))
    assert "class names: CBD's (reference: the keys of CBD's descriptors_cub.json)" in output
    classes, meta = read_parquet_with_metadata(tmp_path / "i" / "target_classes.parquet")
    assert meta[METADATA_KEY] == "CBD's (reference: the keys of CBD's descriptors_cub.json)"
    assert classes["class_name"].tolist() == list(CBD_NAMES.values())
    assert classes["class_dir"].tolist() == list(CUB_CLASSES.values())
    images = pd.read_parquet(tmp_path / "i" / "target_images.parquet")
    assert images.groupby("class_id")["class_name"].first().to_dict() == CBD_NAMES


def test_the_demo_world_keeps_its_own_names_and_the_same_bytes(tmp_path):
    """The demo's made-up birds are not CUB's: auto gives exactly what dataset gives, with no
    metadata key, so the demo's index is the bytes it was; reference is refused."""
    data, params = stage_project(tmp_path, {"format": "cub", "path": "CUB_200_2011"},
                                 lambda data: None)
    settings = yaml.safe_load(params.read_text())
    outputs = {}
    for names in ("auto", "dataset"):
        settings["data"]["target"]["names"] = names
        (tmp_path / f"{names}.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        output = run_by_hand(tmp_path, "data", "--params", str(tmp_path / f"{names}.yaml"),
                             "--out", str(tmp_path / names))
        assert "class names: the dataset's own, as its reader names them" in output
        assert "data.target.names" not in output  # no names in common: no warning
        outputs[names] = {p.name: p.read_bytes() for p in (tmp_path / names).iterdir()}
        meta = read_parquet_with_metadata(tmp_path / names / "target_classes.parquet")[1]
        assert METADATA_KEY not in meta
    assert outputs["auto"] == outputs["dataset"] and len(outputs["auto"]) == 7  # + images.sha256
    from pipeline.data import Data, index_datasets

    settings["data"]["target"]["names"] = "reference"
    with pytest.raises(InputError, match=r"^data.target.names: 'reference' asks for CBD's .* "
                       r"2 of the target's 2 classes are not in class_names/cub_cbd.txt: 1: "):
        index_datasets(Data.model_validate(settings["data"]))


def test_zeroshot_and_the_report_say_which_class_names_were_used(features):
    """The list on target_classes reaches run.json, and the report's zero-shot line says it;
    an index without it (the dataset's own names) leaves run.json as it was."""
    from conftest import BACKBONE
    from pipeline.common import write_parquet
    from test_report import fake_results, few_shot_rows

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["clip"]["backbones"] = {BACKBONE: params["clip"]["backbones"][BACKBONE]}
    params["zeroshot"].update(templates=["paper"], descriptions=["attributes"],
                              baselines={"clip": {}})
    (features / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    index = features / "index"
    zeroshot = ["zeroshot", BACKBONE, "--params", str(features / "params.yaml"), "--index",
                str(index), "--features", str(features / "extract" / BACKBONE), "--clip",
                str(features / "clip" / BACKBONE)]
    run_by_hand(features, *zeroshot, "--out", str(features / "zs-own" / BACKBONE))
    assert "class_names" not in json.loads(
        (features / "zs-own" / BACKBONE / "run.json").read_text())
    classes = pd.read_parquet(index / "target_classes.parquet")
    write_parquet(index / "target_classes.parquet", classes, {METADATA_KEY: "CBD's (reference)"})
    run_by_hand(features, *zeroshot, "--out", str(features / "zs" / BACKBONE))
    assert json.loads((features / "zs" / BACKBONE / "run.json").read_text())[
        "class_names"] == "CBD's (reference)"
    (features / "evaluate" / BACKBONE).mkdir(parents=True)
    pd.concat([fake_results().assign(method="linear", text_mapping="qformer"), few_shot_rows()],
              ignore_index=True).to_parquet(features / "evaluate" / BACKBONE / "results.parquet")
    for name in [*params["describe"]["sets"], *params["describe"]["controls"]]:
        write_parquet(features / "describe" / f"{name}.parquet",
                      pd.DataFrame({"class_id": [1], "text": ["a bird"]}))
    for folder, said in (("zs", "Class names: CBD's (reference)."),
                         ("zs-own", "Class names: the dataset's own, as its reader names them "
                                    "(CUB's: its folder names).")):
        run_by_hand(features, "report", "--params", str(features / "params.yaml"),
                    "--evaluate", str(features / "evaluate"), "--zeroshot",
                    str(features / folder), "--describe", str(features / "describe"),
                    "--out", str(features / f"report-{folder}"))
        markdown = (features / f"report-{folder}" / "zeroshot.md").read_text()
        assert said in markdown.splitlines()[2]
        assert html.escape(said) in (features / f"report-{folder}" / "summary.html").read_text()
