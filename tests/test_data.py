import numpy as np
import pytest

from pipeline.data.bird_attributes import ATTRIBUTE_KINDS, make_classes
from pipeline.data.coco import read_coco_annotations, read_karpathy_coco
from pipeline.data.cub import (DatasetLayoutError, class_name_from_dir, read_cub_attributes,
                               read_cub_classes, read_cub_images, read_reed_captions)
from pipeline.data.demo_world import DemoWorldSpec, generate_demo_world

SMALL = DemoWorldSpec(seed=3, num_classes=5, train_per_class=4, test_per_class=2, coco_images=120,
                      image_size=48)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "world"
    generate_demo_world(root, SMALL, show_progress=False)
    return root


def test_demo_world_has_the_real_cub_layout(world):
    cub = world / "CUB_200_2011"
    images = read_cub_images(cub)
    assert len(images) == 5 * 6 and images["class_id"].nunique() == 5
    assert (images.groupby("class_id")["split"].apply(lambda s: (s == "train").sum()) == 4).all()
    assert all((cub / p).is_file() for p in images["path"])
    first = images.iloc[0]
    assert first["path"].startswith("images/001.") and first["path"].endswith(".jpg")
    classes = read_cub_classes(cub)
    assert classes["class_dir"].iloc[0].startswith("001.")
    assert classes["class_name"].iloc[0] == class_name_from_dir(classes["class_dir"].iloc[0])


def test_demo_class_attribute_matrix_is_like_cubs(world):
    attributes = read_cub_attributes(world / "CUB_200_2011")
    values = attributes.drop(columns="class_id").to_numpy()
    assert values.shape == (5, sum(len(v) for _, v in ATTRIBUTE_KINDS.values()))
    assert values.min() >= 0 and values.max() <= 100
    # percentages of one attribute kind add up to 100 for every class
    assert np.allclose(attributes.filter(like="has_bill_shape::").sum(axis=1), 100.0)


def test_reed_captions_ten_per_image_and_describe_the_image(world):
    images = read_cub_images(world / "CUB_200_2011")
    captions = read_reed_captions(world / "text_c10", images)
    assert len(captions) == 10 * len(images)
    assert captions.groupby("image_id").size().eq(10).all()
    assert captions["text"].str.contains("bird").mean() > 0.5


def test_coco_readers_agree(world):
    k_images, k_captions = read_karpathy_coco(world / "coco" / "dataset_coco.json")
    a_images, a_captions = read_coco_annotations(world / "coco")
    assert len(k_images) == len(a_images) == 120
    assert set(k_images["split"]) == {"train", "restval", "val", "test"}
    assert len(k_captions) == len(a_captions) == 5 * 120
    assert sorted(k_captions["text"]) == sorted(a_captions["text"])
    assert all((world / "coco" / p).is_file() for p in k_images["path"])


def test_demo_world_is_deterministic(tmp_path, world):
    again = tmp_path / "again"
    generate_demo_world(again, SMALL, show_progress=False)
    for rel in ("CUB_200_2011/images.txt", "coco/dataset_coco.json",
                "CUB_200_2011/attributes/class_attribute_labels_continuous.txt"):
        assert (again / rel).read_bytes() == (world / rel).read_bytes()
    first = read_cub_images(world / "CUB_200_2011")["path"].iloc[0]
    assert (again / "CUB_200_2011" / first).read_bytes() == (world / "CUB_200_2011" / first).read_bytes()


def test_species_are_fine_grained_siblings():
    classes = make_classes(20, seed=0)
    assert len({c.name for c in classes}) == 20
    assert len({tuple(sorted(c.primary.items())) for c in classes}) == 20
    stems = [c.name.split(" ", 1)[1] if c.name.split()[0] in ("Northern", "Southern", "Eastern")
             else c.name for c in classes]
    assert len(set(stems)) < 20  # some species share everything their name says


def test_missing_file_is_a_layout_error(tmp_path):
    with pytest.raises(DatasetLayoutError, match="images.txt"):
        read_cub_images(tmp_path)


def test_real_cub_metadata(shared_data):
    cub = shared_data / "CUB_200_2011_metadata"
    classes = read_cub_classes(cub)
    assert len(classes) == 200
    assert classes["class_name"].iloc[0] == "Black footed Albatross"
    images = read_cub_images(cub)
    assert len(images) == 11788
    assert (images["split"] == "train").sum() == 5994 and (images["split"] == "test").sum() == 5794
    assert images["path"].iloc[0].startswith("images/001.Black_footed_Albatross/")
    attributes = read_cub_attributes(cub)
    assert attributes.shape == (200, 313)
    assert "has_bill_shape::curved_(up_or_down)" in attributes.columns


def imagefolder_tree(root):
    """Two classes of two images each, in one folder per class (split given by a file)."""
    from PIL import Image

    for name in ("Alpha_Finch/a1.jpg", "Alpha_Finch/a2.jpg", "Beta_Tern/b1.jpg", "Beta_Tern/b2.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / name)
    return root


@pytest.mark.parametrize("line, why", [
    ("Alpha_Finch/a1.jpg test", "line 5: 'Alpha_Finch/a1.jpg' is listed as train on line 1 and as "
                                "test here: an image in both splits leaks test images into training"),
    ("Alpha_Finch/./a1.jpg train", "line 5: 'Alpha_Finch/./a1.jpg' is listed already on line 1: "
                                   "it would count twice"),
    ("{outside} test", "line 5: '{outside}' is not a path under the dataset root"),
    ("Alpha_Finch/../../x/a.jpg test", "line 5: 'Alpha_Finch/../../x/a.jpg' is not a path under "
                                       "the dataset root"),
], ids=["both splits", "twice", "absolute", "climbing out"])
def test_a_split_file_that_contradicts_itself_is_refused_naming_the_line(tmp_path, line, why):
    """Issue 23: a split file listing an image in both splits, twice, or outside the root is one
    error naming the file and the line, never indexed as given."""
    from pipeline.data.imagefolder import read_imagefolder

    root = imagefolder_tree(tmp_path / "cars")
    outside = tmp_path / "elsewhere.jpg"
    split = tmp_path / "split.txt"
    good = "Alpha_Finch/a1.jpg train\nAlpha_Finch/a2.jpg test\nBeta_Tern/b1.jpg train\n" \
           "Beta_Tern/b2.jpg test\n"
    split.write_text(good)
    images, _ = read_imagefolder(root, split)
    assert images["split"].tolist() == ["train", "test", "train", "test"]
    split.write_text(good + line.format(outside=outside) + "\n")
    with pytest.raises(DatasetLayoutError) as error:
        read_imagefolder(root, split)
    assert str(error.value).startswith(f"{split}: " + why.format(outside=outside))


@pytest.mark.parametrize("damage, why", [
    ("train_test_split.txt", "train_test_split.txt: line 31: image_id 1 is listed again (first on "
                             "line 1)"),
    ("images.txt", "images.txt: line 31: image_id 1 is listed again (first on line 1)"),
    ("same path", "images.txt: '{first}' is listed under two image ids"),
    ("climbing out", "images.txt: '../../elsewhere.jpg' is not a path under"),
], ids=["split twice", "image id twice", "one image two ids", "outside"])
def test_cub_metadata_that_contradicts_itself_is_refused(tmp_path, world, damage, why):
    """Issue 23: an image given two splits (or listed twice, or outside the images folder) is one
    error naming the file and the line, not indexed as given."""
    import shutil

    cub = tmp_path / "CUB_200_2011"
    shutil.copytree(world / "CUB_200_2011", cub, ignore=shutil.ignore_patterns("images"))
    assert len(read_cub_images(cub)) == 30  # 5 classes x 6 images
    images = (cub / "images.txt").read_text().splitlines()
    first = images[0].split()[1]
    if damage == "train_test_split.txt":
        split = (cub / damage).read_text().splitlines()
        flipped = "0" if split[0].split()[1] == "1" else "1"
        (cub / damage).write_text("\n".join(split + [f"1 {flipped}"]) + "\n")
    elif damage == "images.txt":
        (cub / damage).write_text("\n".join(images + [f"1 {first}"]) + "\n")
    else:
        rel = first if damage == "same path" else "../../elsewhere.jpg"
        (cub / "images.txt").write_text("\n".join(images[:-1] + [f"30 {rel}"]) + "\n")
    with pytest.raises(DatasetLayoutError) as error:
        read_cub_images(cub)
    assert str(error.value).startswith(f"{cub}/" + why.format(first=first))


def test_hidden_files_are_skipped_counted_and_named(tmp_path):
    """Issue 23: a folder copied from a Mac holds `._x.jpg` twins (not images: AppleDouble
    metadata) and `.DS_Store`; they are skipped and said, not indexed to fail as bad images."""
    from pipeline.data.formats.imagefolder import ImageFolderTarget, read_folders

    for split in ("train", "test"):
        imagefolder_tree(tmp_path / "cars" / split)
        (tmp_path / "cars" / split / "Alpha_Finch" / "._a1.jpg").write_bytes(b"\0\5\26\7")
    (tmp_path / "cars" / "train" / ".DS_Store").write_bytes(b"\0")
    target = read_folders(tmp_path, ImageFolderTarget(format="imagefolder", path="cars"))
    assert len(target.images) == 8 and not target.images["path"].str.contains("/[.]").any()
    assert len(target.notes) == 1 and target.notes[0].startswith(
        "skipped 3 hidden file(s) (a leading '.', as macOS's ._ twins), e.g. ")


def test_a_class_missing_from_a_split_is_one_warning_naming_it():
    import pandas as pd

    from pipeline.data.index import DatasetIndex

    classes = pd.DataFrame({"class_id": [1, 2, 3], "class_name": ["Alpha", "Beta", "Gamma"]})
    images = pd.DataFrame({"class_id": [1, 1, 2, 3], "split": ["train", "test", "test", "train"]})
    index = DatasetIndex({"target_images": images, "target_classes": classes}, {})
    assert index.one_split_classes() == [
        "1 class(es) have no train image (it can never be predicted): 2: Beta",
        "1 class(es) have no test image (it is never scored): 3: Gamma"]
    images["split"] = ["train", "test"] * 2
    images["class_id"] = [1, 1, 2, 2]  # Gamma in neither split
    assert [line.split(": ", 1)[1] for line in index.one_split_classes()] == ["3: Gamma"] * 2


def spaced_tree(root):
    """Train and test class folders, one of them with spaces in its name."""
    from PIL import Image

    for split in ("train", "test"):
        for name in ("Acura TL 2012/a.jpg", "Alpha_Finch/b.jpg"):
            (root / split / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(root / split / name)
    return root


def test_a_class_names_file_names_folders_with_spaces_and_refuses_what_contradicts():
    """Issue 23: a folder whose name has spaces could not be named (the line split at its first
    space), and the error blamed data.target.path; an unknown folder, a folder named twice and
    two classes of one name after cleaning are refused, each naming data.target.class_names."""
    import pathlib
    import tempfile

    from pipeline.data.formats.imagefolder import ImageFolderTarget, read_folders

    with tempfile.TemporaryDirectory() as folder:
        root = pathlib.Path(folder)
        spaced_tree(root / "cars")
        target = ImageFolderTarget(format="imagefolder", path="cars", class_names="names.txt")
        for text in ("Acura TL 2012 Acura TL Sedan 2012\nAlpha_Finch Alpha finch\n",
                     "Acura TL 2012\tAcura TL Sedan 2012\nAlpha_Finch\tAlpha finch\n"):
            (root / "names.txt").write_text(text)
            classes = read_folders(root, target).classes
            assert classes["class_name"].tolist() == ["Acura TL Sedan 2012", "Alpha finch"]
        for text, why in [
                ("Acura TL 2012 x\nAlpha_Finch y\nBeta_Tern z\n", "line 3 names folder "
                 "'Beta_Tern', which the tree has no images in"),
                ("Acura TL 2012 x\nAlpha_Finch y\nAlpha_Finch z\n", "line 3 names folder "
                 "'Alpha_Finch' a second time"),
                ("Acura TL 2012 Finch\nAlpha_Finch finch\n", "folders 'Acura TL 2012' and "
                 "'Alpha_Finch' have the same class name 'finch' after cleaning")]:
            (root / "names.txt").write_text(text)
            with pytest.raises(DatasetLayoutError, match=why) as error:
                read_folders(root, target)
            assert error.value.key == "class_names"
