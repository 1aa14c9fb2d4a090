"""CoOp's split files (`split_zhou_<Name>.json`, Zhou et al.'s CoOp `datasets/oxford_pets.py`
`read_split`) as `data.target.coop_split` (issue 22 item 2, issue 23's checks of user files):
small trees the tests make in each set's real layout (as CoOp's DATASETS.md places the files),
a split file written beside them, the index it gives, and each faulty file's one error line."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.io import savemat

from conftest import jpeg, lines
from pipeline.data.cub import DatasetLayoutError
from pipeline.data.formats import IMAGE_COLUMNS, TARGET_FORMATS


def write_split(root: Path, split: dict, name: str) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(split))
    for entries in split.values():
        for path, _, _ in entries:
            jpeg(root / PREFIX[name] / path)
    return name


PREFIX = {"split_zhou_OxfordPets.json": "images", "split_zhou_OxfordFlowers.json": "jpg",
          "split_zhou_Food101.json": "images", "split_zhou_StanfordCars.json": "."}

PETS_SPLIT = {  # labels 0-based, breeds lower case, as CoOp's read_data writes them
    "train": [["Abyssinian_1.jpg", 0, "abyssinian"], ["american_bulldog_10.jpg", 1,
                                                       "american_bulldog"],
              ["staffordshire_bull_terrier_3.jpg", 2, "staffordshire_bull_terrier"]],
    "val": [["Abyssinian_2.jpg", 0, "abyssinian"], ["american_bulldog_11.jpg", 1,
                                                     "american_bulldog"]],
    "test": [["Abyssinian_3.jpg", 0, "abyssinian"],
             ["staffordshire_bull_terrier_4.jpg", 2, "staffordshire_bull_terrier"]]}


def pets_tree(root: Path) -> str:
    """oxford_pets/: images/, annotations/ (the class list comes from them) and the split."""
    lines(root / "annotations" / "trainval.txt", "Abyssinian_1 1 1 1", "Abyssinian_2 1 1 1",
          "american_bulldog_10 2 2 1", "staffordshire_bull_terrier_3 3 2 2")
    lines(root / "annotations" / "test.txt", "Abyssinian_3 1 1 1", "american_bulldog_11 2 2 1",
          "staffordshire_bull_terrier_4 3 2 2")
    jpeg(root / "images" / "Abyssinian_99.jpg")  # in no list: not indexed
    return write_split(root, PETS_SPLIT, "split_zhou_OxfordPets.json")


def flowers_tree(root: Path) -> str:
    """oxford_flowers/ as CoOp has it: jpg/ and the split (no setid.mat: CoOp draws its own)."""
    return write_split(root, {
        "train": [["image_00001.jpg", 0, "pink primrose"],
                  ["image_00003.jpg", 1, "hard-leaved pocket orchid"]],
        "val": [["image_00005.jpg", 2, "canterbury bells"]],
        "test": [["image_00002.jpg", 0, "pink primrose"],
                 ["image_00004.jpg", 101, "blackberry lily"]]}, "split_zhou_OxfordFlowers.json")


def food_tree(root: Path) -> str:
    """food-101/: images/<class>/, meta/classes.txt and the split (its paths keep '.jpg')."""
    lines(root / "meta" / "classes.txt", "apple_pie", "baby_back_ribs", "huevos_rancheros")
    return write_split(root, {
        "train": [["apple_pie/1005649.jpg", 0, "apple_pie"],
                  ["huevos_rancheros/1001445.jpg", 2, "huevos_rancheros"]],
        "val": [["baby_back_ribs/1000101.jpg", 1, "baby_back_ribs"]],
        "test": [["apple_pie/1011328.jpg", 0, "apple_pie"]]}, "split_zhou_Food101.json")


CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Ram C/V Cargo Van Minivan 2012"]


def cars_tree(root: Path) -> str:
    """stanford_cars/: devkit/cars_meta.mat (the class list), cars_train/, cars_test/, the
    split, whose paths are under the set's own folder and whose names put the year first."""
    names = np.empty((1, len(CAR_NAMES)), dtype=object)
    names[0, :] = CAR_NAMES
    (root / "devkit").mkdir(parents=True)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    return write_split(root, {
        "train": [["cars_train/00001.jpg", 0, "2000 AM General Hummer SUV"],
                  ["cars_train/00002.jpg", 2, "2012 Ram C/V Cargo Van Minivan"]],
        "val": [["cars_train/00003.jpg", 1, "2012 Acura RL Sedan"]],
        "test": [["cars_test/00001.jpg", 2, "2012 Ram C/V Cargo Van Minivan"]]},
        "split_zhou_StanfordCars.json")


TREES = {"oxford_pets": pets_tree, "flowers102": flowers_tree, "food101": food_tree,
         "stanford_cars": cars_tree}


def read(name: str, data_root: Path, split: str | None):
    entry = TARGET_FORMATS.entry(name)
    return entry.value(data_root, entry.settings(format=name, path="target", coop_split=split))


def made(name: str, tmp_path: Path):
    return read(name, tmp_path, TREES[name](tmp_path / "target"))


def index_rows(target) -> list[tuple[str, int, str, str]]:
    images = target.images
    assert list(images.columns) == IMAGE_COLUMNS
    assert images["image_id"].tolist() == list(range(1, len(images) + 1))
    assert (images["image_id"].dtype, images["class_id"].dtype) == (np.int64, np.int32)
    return list(zip(images["path"], images["class_id"], images["class_name"], images["split"]))


def test_oxford_pets_from_coops_split_with_its_val_part_and_names(tmp_path):
    target = made("oxford_pets", tmp_path)
    assert index_rows(target) == [
        ("images/Abyssinian_1.jpg", 1, "abyssinian", "train"),
        ("images/Abyssinian_2.jpg", 1, "abyssinian", "val"),
        ("images/Abyssinian_3.jpg", 1, "abyssinian", "test"),
        ("images/american_bulldog_10.jpg", 2, "american bulldog", "train"),
        ("images/american_bulldog_11.jpg", 2, "american bulldog", "val"),
        ("images/staffordshire_bull_terrier_3.jpg", 3, "staffordshire bull terrier", "train"),
        ("images/staffordshire_bull_terrier_4.jpg", 3, "staffordshire bull terrier", "test")]
    assert target.classes["class_dir"].tolist() == ["Abyssinian", "american_bulldog",
                                                    "staffordshire_bull_terrier"]
    own = read("oxford_pets", tmp_path, None)  # null: the format's own split, as before
    assert set(own.images["split"]) == {"train", "test"} and len(own.images) == 7
    assert own.classes["class_name"].tolist()[1] == "American Bulldog"


def test_flowers102_from_coops_split_needs_no_mat_file(tmp_path):
    target = made("flowers102", tmp_path)
    assert index_rows(target) == [
        ("jpg/image_00001.jpg", 1, "pink primrose", "train"),
        ("jpg/image_00002.jpg", 1, "pink primrose", "test"),
        ("jpg/image_00003.jpg", 2, "hard-leaved pocket orchid", "train"),
        ("jpg/image_00004.jpg", 102, "blackberry lily", "test"),
        ("jpg/image_00005.jpg", 3, "canterbury bells", "val")]
    assert len(target.classes) == 102


def test_food101_from_coops_split(tmp_path):
    target = made("food101", tmp_path)
    assert index_rows(target) == [
        ("images/apple_pie/1005649.jpg", 1, "apple pie", "train"),
        ("images/apple_pie/1011328.jpg", 1, "apple pie", "test"),
        ("images/baby_back_ribs/1000101.jpg", 2, "baby back ribs", "val"),
        ("images/huevos_rancheros/1001445.jpg", 3, "huevos rancheros", "train")]


def test_stanford_cars_from_coops_split_names_the_year_first(tmp_path):
    target = made("stanford_cars", tmp_path)
    assert index_rows(target) == [
        ("cars_test/00001.jpg", 3, "2012 Ram C/V Cargo Van Minivan", "test"),
        ("cars_train/00001.jpg", 1, "2000 AM General Hummer SUV", "train"),
        ("cars_train/00002.jpg", 3, "2012 Ram C/V Cargo Van Minivan", "train"),
        ("cars_train/00003.jpg", 2, "2012 Acura RL Sedan", "val")]
    assert target.classes["class_dir"].tolist() == ["1", "2", "3"]


def faulty(tmp_path: Path, change) -> tuple[Path, str]:
    """The pets tree with its split file changed by `change` (on the parsed JSON, or returning
    the file's bytes); the error reading it."""
    split_file = tmp_path / "target" / pets_tree(tmp_path / "target")
    content = json.loads(split_file.read_text())
    out = change(content)
    split_file.write_bytes(out if isinstance(out, bytes) else json.dumps(content).encode())
    with pytest.raises(DatasetLayoutError) as error:
        read("oxford_pets", tmp_path, split_file.name)
    assert error.value.key == "coop_split" and "\n" not in str(error.value)
    return split_file, str(error.value)


FAULTS = {  # what is wrong -> (the change, the message after the file's name)
    "label a text": (lambda s: s["train"][1].__setitem__(1, "1"),
                     ": train[1]: the label must be a whole number from 0, got '1'"),
    "label true": (lambda s: s["val"][0].__setitem__(1, True),
                   ": val[0]: the label must be a whole number from 0, got True"),
    "entry of two": (lambda s: s["test"].__setitem__(0, ["Abyssinian_3.jpg", 0]),
                     ": test[0]: expected [path, label, classname], got "
                     "['Abyssinian_3.jpg', 0]"),
    "path a number": (lambda s: s["train"][0].__setitem__(0, 7),
                      ": train[0]: the path must be a text of 1 to 1000 characters, got '7'"),
    "huge name": (lambda s: s["train"][0].__setitem__(2, "a" * 10_000),
                  f": train[0]: the class name must be a text of 1 to 300 characters, got "
                  f"'{'a' * 80}'"),
    "part not a list": (lambda s: s.__setitem__("val", {"a": 1}),
                        ": val: expected a non-empty list of [path, label, classname], got dict"),
    "empty part": (lambda s: s.__setitem__("test", []),
                   ": test: expected a non-empty list of [path, label, classname], got an empty "
                   "list"),
    "no val": (lambda s: s.pop("val"), ": no 'val' list"),
    "unknown key": (lambda s: s.__setitem__("trainval", []),
                    ": unknown key 'trainval' (a split file has train, val, test)"),
    "not an object": (lambda s: b"[1, 2]", ": expected an object {\"train\": [...], \"val\": "
                      "[...], \"test\": [...]}, got list"),
    "invalid UTF-8": (lambda s: b'{"train": "\xff"}', ": byte 11 is not UTF-8 (invalid start "
                      "byte)"),
    "not JSON": (lambda s: b'{"train": [\n[1, 2,\n', ": line 3: not JSON (Expecting value)"),
    "duplicate key": (lambda s: b'{"train": [], "val": [], "train": [], "test": []}',
                      ": the key 'train' is given twice (JSON keeps the last silently)"),
    "absolute path": (lambda s: s["test"][0].__setitem__(0, "/etc/passwd"),
                      ": test[0]: '/etc/passwd' is not a path under the image folder (absolute, "
                      "climbing out with '..', or with '\\')"),
    "climbing out": (lambda s: s["test"][0].__setitem__(0, "../annotations/x.jpg"),
                     ": test[0]: '../annotations/x.jpg' is not a path under the image folder "
                     "(absolute, climbing out with '..', or with '\\')"),
    "label out of range": (lambda s: s["train"][0].__setitem__(1, 37),
                           ": train[0]: label 37 is not one of the format's 3 classes (0 to 2)"),
    "name contradicts": (lambda s: s["val"][1].__setitem__(2, "abyssinian"),
                         ": val[1]: label 1 is 'american_bulldog' in the format's class list, "
                         "and the file names it 'abyssinian'"),
    "not there": (lambda s: s["test"].append(["Bengal_1.jpg", 0, "abyssinian"]),
                  ": test[2]: images/Bengal_1.jpg is not there under {root}"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_faulty_split_file_is_one_error_naming_the_file_and_entry(tmp_path, fault):
    change, message = FAULTS[fault]
    split_file, error = faulty(tmp_path, change)
    assert error == f"{split_file}" + message.replace("{root}", str(split_file.parent))


def test_an_image_listed_twice_or_in_two_parts_is_refused_naming_both_entries(tmp_path):
    split_file, error = faulty(tmp_path, lambda s: s["test"].append(s["val"][0]))
    assert error == (f"{split_file}: test[2]: 'images/Abyssinian_2.jpg' is listed as val "
                     f"({split_file}: val[0]) and as test here: an image in both splits leaks "
                     "test images into training")
    split_file, error = faulty(tmp_path / "twice", lambda s: s["train"].append(s["train"][0]))
    assert error == (f"{split_file}: train[3]: 'images/Abyssinian_1.jpg' is listed already "
                     f"({split_file}: train[0]): it would count twice")


def test_a_missing_split_file_and_one_outside_the_target_are_refused(tmp_path):
    from stages.params import ParamsError, validate_params

    pets_tree(tmp_path / "target")
    with pytest.raises(DatasetLayoutError) as error:
        read("oxford_pets", tmp_path, "split_zhou_Other.json")
    assert str(error.value).startswith(
        f"missing file {tmp_path / 'target' / 'split_zhou_Other.json'} (CoOp's")
    with pytest.raises(ParamsError, match="data.target.coop_split: .*must be a path inside "
                                          "data.target.path"):
        validate_params({"data": {"captions": None, "target": {
            "format": "oxford_pets", "path": "x", "coop_split": "../s.json"}}}, "params")
    with pytest.raises(ParamsError, match="data.target.coop_split: unknown key"):
        validate_params({"data": {"captions": None, "target": {
            "format": "fgvc_aircraft", "path": "x", "coop_split": "s.json"}}}, "params")


def test_the_index_error_names_the_params_key(tmp_path):
    """Through the data stage's reader: 'data.target.coop_split: <file>: <entry>: ...'."""
    from pipeline.common import InputError
    from pipeline.data.index import _read

    split_file, _ = faulty(tmp_path, lambda s: s["train"][0].__setitem__(1, -1))
    entry = TARGET_FORMATS.entry("oxford_pets")
    settings = entry.settings(format="oxford_pets", path="target", coop_split=split_file.name)
    with pytest.raises(InputError) as error:
        _read("target.path", entry.value, tmp_path, settings)
    assert str(error.value) == (f"data.target.coop_split: {split_file}: train[0]: the label "
                                "must be a whole number from 0, got -1")


# --- the val part as the held-out slice ---------------------------------------------------

def split_ids(splits: list[str]) -> pd.DataFrame:
    """Feature-set ids of images 1..N of classes 7 and 9 (alternating), in these splits."""
    return pd.DataFrame({"image_id": np.arange(1, len(splits) + 1),
                         "class_id": np.tile([7, 9], len(splits))[:len(splits)],
                         "split": splits})


def test_the_training_table_holds_val_images_out_of_every_run():
    from pipeline.adapter.training_mix import Run, build_training_table, run_rows

    images = split_ids(["train"] * 8 + ["val"] * 4 + ["test"] * 2)
    captions = pd.DataFrame({"image_id": np.repeat(np.arange(1, 15), 2)})
    descriptions = pd.DataFrame({"class_id": [7, 9]})
    table, rows, captioned = build_training_table(images, captions, descriptions,
                                                  np.array([7, 9]))
    assert rows.tolist() == [True] * 12 + [False] * 2  # train and val images are image rows
    assert table.val.tolist() == [False] * 8 + [True] * 4
    assert table.train_rows.tolist() == list(range(8))
    assert captioned.sum() == 16  # only train images' captions: val images are never replaced
    for fraction, validated in ((0.2, [8, 9, 10, 11]), (0.0, [])):
        for source in ("none", "captions", "descriptions"):
            part = run_rows(Run(50, source, "class_balanced", 0), table, 1, fraction)
            assert part.val_rows.tolist() == validated
            assert not set(part.pool) & {8, 9, 10, 11}  # never trained on
            assert not set(part.kept_ids) & {9, 10, 11, 12}
            assert len(part.kept_ids) == 4  # 50 % of the 8 train images, not of 12
    plain, _, _ = build_training_table(images[images["split"] != "val"], captions,
                                       descriptions, np.array([7, 9]))
    assert plain.val is None and plain.train_rows.tolist() == list(range(8))


def test_the_probe_picks_its_strength_on_the_val_images_and_keeps_that_fit():
    """CoOp's lpclip rule: each strength fitted on train, scored on val; the best fit is the
    probe. Here val's labels are train's classes swapped for half the images: the strongest
    penalty (a near-uniform probe) cannot win on them the way it would on held-out train."""
    import torch.nn.functional as F

    from pipeline.zeroshot.probe import _fit, fit_linear_probe

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    y = np.tile([0, 1, 2], 20)
    x = centres[y] + 0.3 * rng.normal(size=(60, 8))
    y_val = np.tile([0, 1, 2], 4)
    x_val = centres[y_val] + 0.3 * rng.normal(size=(12, 8))
    strengths = [1.0, 1e-2, 1e-4]
    probe = fit_linear_probe(x, y, 3, strengths=strengths, val_fraction=0.5, seed=0,
                             max_iter=200, device="cpu", val=(x_val, y_val))
    unit = torch.cat([F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1),
                      torch.ones(60, 1)], dim=1)
    unit_val = torch.cat([F.normalize(torch.as_tensor(x_val, dtype=torch.float32), dim=-1),
                          torch.ones(12, 1)], dim=1)
    start, expected = None, []
    for strength in strengths:  # strong to weak, warm-started, as the probe's path
        start = _fit(unit, torch.as_tensor(y), 3, strength, 200, start)
        expected.append((strength, 100.0 * float(((unit_val @ start.T).argmax(1).numpy()
                                                  == y_val).mean()), start))
    assert probe.validation["val_top1"].tolist() == pytest.approx([e[1] for e in expected])
    best = max(expected, key=lambda e: e[1])  # first best: the strongest among ties
    assert probe.strength == best[0]
    assert torch.allclose(probe.weight, best[2][:, :-1]) and torch.allclose(probe.bias,
                                                                            best[2][:, -1])
    no_val = fit_linear_probe(x, y, 3, strengths=strengths, val_fraction=0.5, seed=0,
                              max_iter=200, device="cpu")
    assert len(no_val.validation) == 3  # the held-out-train route still runs as before


def inputs_with_val(train: int = 90, val_per_class: int = 6, classes: int = 3, seed: int = 2):
    """`random_inputs` (hand-made class-structured features) whose last val_per_class *
    classes image rows are a val part."""
    import dataclasses

    import torch

    from pipeline.bench.few_shot import random_inputs

    inputs = random_inputs(train + val_per_class * classes, classes, 16, 3, seed=seed,
                           device=torch.device("cpu"))
    val = np.zeros(len(inputs.table.images), bool)
    val[train:] = True
    return inputs, dataclasses.replace(inputs, table=dataclasses.replace(inputs.table, val=val))


def protocol_of(shots, ratios=(), methods=None):
    from pipeline.adapter.settings import TrainAdapter

    return TrainAdapter(methods=methods or {"linear": {}},
                        budgets={"ratios": list(ratios), "shots": list(shots),
                                 "seeds": [1, 2]})


def test_few_shot_budgets_draw_from_train_and_validate_on_min_k_4_val_images_a_class():
    from pipeline.adapter.budgets import Budget, folds, kept_images
    from pipeline.adapter.few_shot import budget_images

    plain, inputs = inputs_with_val()
    labels = inputs.table.images["class_index"].to_numpy()
    val = np.flatnonzero(inputs.table.val)
    parts = budget_images(inputs, protocol_of([1, 2, 8], ratios=[50]))
    by_name = {part.budget.name: part for part in parts}
    for part in parts:
        assert part.rows.max() < 90 and part.fold is None  # train rows only; no CV
        assert part.val_labels.tolist() == labels[part.val_rows].tolist()
        assert set(part.val_rows) <= set(val)
    for seed in (1, 2):
        for k, per_class in ((1, 1), (2, 2), (8, 4)):  # min(k, 4)
            part = by_name[f"shots{k:02d}-s{seed}"]
            assert np.bincount(labels[part.val_rows]).tolist() == [per_class] * 3
            assert part.val_rows.tolist() == val[kept_images(labels[val], Budget(
                seed, shots=per_class))].tolist()  # drawn as shots are, at the budget's seed
        assert set(by_name[f"shots01-s{seed}"].val_rows) < set(by_name[f"shots08-s{seed}"]
                                                               .val_rows)
    assert by_name["img050-s1"].val_rows.tolist() == val.tolist()  # a ratio: every val image
    # without a val part: today's budgets and folds over all image rows, exactly
    for part in budget_images(plain, protocol_of([1, 2, 8], ratios=[50])):
        rows = kept_images(plain.table.images["class_index"].to_numpy(), part.budget)
        assert part.rows.tolist() == rows.tolist() and part.val_rows is None
        expected = folds(part.labels, 3, part.budget.seed)
        assert (part.fold is None and expected is None) or part.fold.tolist() == expected.tolist()


def test_the_few_shot_probe_chooses_its_strength_on_the_val_images(monkeypatch):
    import functools

    import pipeline.adapter.logistic as logistic
    from pipeline.adapter.few_shot import budget_images, kept_features, scored_features
    from pipeline.adapter.methods.probe import Probe, train_probe

    # solved tightly, so that K heads fitted together meet each head's own optimum
    fit_logistic_heads = functools.partial(logistic.fit_logistic_heads, tolerance=1e-9)
    monkeypatch.setattr(logistic, "fit_logistic_heads", fit_logistic_heads)
    _, inputs = inputs_with_val()
    settings = Probe(strengths=[10.0, 1e-1, 1e-3], max_iter=1000)
    trained = train_probe(inputs, protocol_of([2, 8]), settings)
    runs = trained.runs.set_index("run")
    for part in budget_images(inputs, protocol_of([2, 8])):
        x, y = kept_features(inputs, part), torch.as_tensor(part.labels)
        accuracy = []
        for strength in settings.strengths:  # each fitted on every kept image, alone
            w, b = fit_logistic_heads(x, y, torch.ones(1, len(x)), 3, torch.tensor([strength]),
                                      max_iter=1000)
            scores = scored_features(inputs, part) @ w[0].T + b[0]
            accuracy.append(100.0 * float((scores.argmax(1).numpy() == part.val_labels).mean()))
        row = runs.loc[f"probe-{part.budget.name}"]
        best = int(np.flatnonzero(np.array(accuracy) == max(accuracy))[0])
        assert row["strength"] == settings.strengths[best], part.budget.name
        assert row["cv_top1"] == pytest.approx(max(accuracy), abs=1e-4)
        assert row["selected_by"] == f"{len(part.val_rows)} val images of CoOp's split"
    assert "chosen on val images in 4" in trained.summary()


def test_tip_adapter_chooses_alpha_and_beta_by_its_formula_on_the_val_images():
    """Tip-Adapter's published logits, 100 x W^T + alpha exp(-beta (1 - x F^T)) L, with the
    whole cache of kept images F, on each budget's val images; the first best (alpha, beta)."""
    import torch
    import torch.nn.functional as F

    from pipeline.adapter.few_shot import budget_images, kept_features, text_prototypes
    from pipeline.adapter.methods.tip import TipAdapter, train_tip
    from pipeline.adapter.methods.tip_f import TipAdapterF, train_tip_f

    _, inputs = inputs_with_val(seed=5)
    settings = TipAdapter()
    runs = train_tip(inputs, protocol_of([1, 4]), settings).runs.set_index("budget")
    zero_shot = text_prototypes(inputs, "none")
    grid = [(a, b) for a in settings.alphas for b in settings.betas]
    for part in budget_images(inputs, protocol_of([1, 4])):
        if part.budget.seed != 1:
            continue
        keys = kept_features(inputs, part)
        values = F.one_hot(torch.as_tensor(part.labels), 3).float()
        x = F.normalize(inputs.features[torch.as_tensor(part.val_rows)], dim=-1)
        accuracy = [float(((100 * x @ zero_shot.T + a * torch.exp(-b * (1 - x @ keys.T))
                            @ values).argmax(1).numpy() == part.val_labels).mean())
                    for a, b in grid]
        best = grid[int(np.flatnonzero(np.array(accuracy) == max(accuracy))[0])]
        chosen = runs[runs["seed"] == 1].loc[part.budget.label]
        assert (chosen["alpha"], chosen["beta"]) == best
    # keys that cannot move: Tip-Adapter-F chooses as Tip-Adapter on the same val images
    frozen = train_tip_f(inputs, protocol_of([1, 4]), TipAdapterF(lr=1e-12, epochs=1)).runs
    tip = train_tip(inputs, protocol_of([1, 4]), settings).runs
    pd.testing.assert_frame_equal(frozen[["budget", "alpha", "beta", "selected_by"]],
                                  tip[["budget", "alpha", "beta", "selected_by"]])


def test_every_few_shot_method_trains_on_a_val_split():
    """Each method of the protocol runs with a val part, every choice made on the val images
    (the runs table says so), and what it trained never saw a val image (the kept rows)."""
    from pipeline.adapter.methods import ADAPTER_METHODS
    from pipeline.adapter.settings import TrainAdapter

    _, inputs = inputs_with_val()
    few_shot = {"probe": {}, "ensemble": {}, "text_prior": {}, "tip": {}, "tip_f": {"epochs": 2},
                "clap": {}, "lp_pp": {"steps": 40, "eval_every": 20}}
    protocol = TrainAdapter(methods=dict(few_shot, linear={}),
                            budgets={"ratios": [], "shots": [2], "seeds": [1]})
    for name in few_shot:
        runs = ADAPTER_METHODS.get(name).train(inputs, protocol, protocol.methods[name]).runs
        assert (runs["selected_by"].isin(["6 val images of CoOp's split", "none to choose"])
                ).all(), (name, runs["selected_by"].tolist())
        assert (runs["n_images"] == 6).all()


def test_the_zero_shot_probe_row_says_where_its_strength_was_picked():
    from pipeline.zeroshot.baselines import ZeroShotInputs
    from pipeline.zeroshot.baselines.linear_probe import LinearProbeSettings, score_probe
    from pipeline.zeroshot.probe import fit_linear_probe

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 4))
    y, y_val = np.tile([0, 1], 10), np.array([0, 1, 0, 1])
    x, x_val = (centres[labels] + rng.normal(size=(len(labels), 4)) for labels in (y, y_val))
    common = dict(backbone="b", class_names=["a", "b"], train_x=x, train_y=y, test_x=x_val,
                  test_y=torch.as_tensor(y_val), test_ids=np.arange(4), test_paths=[],
                  templates={}, descriptions={}, device="cpu")
    settings = LinearProbeSettings(strengths=[1.0, 1e-3])
    (with_val,) = score_probe(ZeroShotInputs(**common, val_x=x_val, val_y=y_val), settings)
    (without,) = score_probe(ZeroShotInputs(**common), settings)
    picked = fit_linear_probe(x, y, 2, strengths=[1.0, 1e-3], val_fraction=0.2, seed=0,
                              max_iter=100, device="cpu", val=(x_val, y_val)).strength
    assert with_val.prompt == f"L2 strength {picked:g} (picked on the split's 4 val images)"
    assert without.prompt.endswith("(picked on held-out train)")


def test_the_data_stage_counts_the_val_images(tmp_path):
    """`index_datasets` on a pets tree with CoOp's split beside a small COCO: the summary
    counts each part, the index has the val split."""
    from pipeline.data import Data, DemoWorldSpec, generate_demo_world, index_datasets

    data = tmp_path / "data"
    generate_demo_world(data, DemoWorldSpec(num_classes=2, train_per_class=1, test_per_class=1,
                                            coco_images=100, image_size=32), show_progress=False)
    split = pets_tree(data / "oxford_pets")
    settings = Data.model_validate({"demo": {}, "root": str(data), "captions": None, "target": {
        "format": "oxford_pets", "path": "oxford_pets", "coop_split": split}})
    index = index_datasets(settings)
    assert index.summary(settings).startswith(
        "oxford_pets: 7 images (3 train, 2 val, 2 test) in 3 classes, all present")
    assert index.tables["target_images"]["split"].value_counts().to_dict() == {
        "train": 3, "val": 2, "test": 2}
    assert index.one_split_classes() == [  # pets' class 2 has no test image, class 3 no val
        "1 class(es) have no test image (it is never scored): 2: american bulldog",
        "1 class(es) have no val image (no choice is checked on it): 3: staffordshire bull "
        "terrier"]
