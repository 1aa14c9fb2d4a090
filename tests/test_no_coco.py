"""A folder of images is enough to start (issue 22, item 7): with `data.coco: null` there is no
COCO and so no Q-Former, and every stage that does not need one runs: the data stage indexes the
target alone, the zero-shot baselines, the probe and the few-shot methods train and score, the
linear adapter trains its raw-text columns only, and the report says why the Q-Former columns are
absent. The end-to-end test is what `dvc repro` runs (every stage's command from DVC's index,
in this process, then `dvc commit`) in a temp copy whose data folder holds nothing but `<class>/<image>`
folders the test draws (`pipeline.data.bird_drawing`), with a CLIP from a local checkpoint file
(a pretrained CLIP, as a user's would be, with no hub to reach).
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_repo, dvc, run_stages_by_hand
from stages.params import ParamsError, validate_params
from stages.preset import preset_tree

CLASSES = {  # a folder per class, drawn from its look
    "Red_Finch": {"head": "red", "body": "red", "wing": "black", "bill": "cone",
                  "pattern": "solid", "size": "small"},
    "Blue_Shrike": {"head": "blue", "body": "blue", "wing": "white", "bill": "hooked",
                    "pattern": "striped", "size": "medium"},
    "Yellow_Curlew": {"head": "yellow", "body": "yellow", "wing": "brown", "bill": "long",
                      "pattern": "spotted", "size": "large"},
}
TRAIN, TEST = 10, 4  # images per class (10% of 10 train images: one kept)


def no_coco(**changes) -> dict:
    """The defaults as a mapping, made a user's: an ImageFolder target, no captions, no COCO, a
    pretrained CLIP (`changes`: more sections' keys, merged one level deep)."""
    raw = preset_tree("demo", Path("presets"))
    raw["data"].update(demo={}, root="data", captions=None, coco=None,
                       target={"format": "imagefolder", "path": "birds"})
    raw["clip"].update(backbones={"own": {"model": "fgvc-demo-micro", "pretrained": "w.pt"}},
                       adapter_backbones=["own"])
    for section, keys in changes.items():
        raw[section].update(keys)
    return raw


# --- params: what needs the Q-Former is refused, one line naming the key ----------------------

def test_without_coco_a_clip_trained_here_is_refused():
    raw = no_coco(clip={"backbones": {"demo": {"model": "fgvc-demo-micro", "pretrained": None}},
                        "adapter_backbones": ["demo"]})
    with pytest.raises(ParamsError, match=r"^p: clip.backbones: 'demo' \(pretrained: null\) "
                                          r"would be trained on COCO, and data.coco is null"):
        validate_params(raw, "p")


def test_without_coco_a_method_mapping_texts_is_refused():
    raw = no_coco()
    raw["train_adapter"]["methods"]["text_prior"]["mapping"] = "qformer"
    with pytest.raises(ParamsError, match=r"^p: train_adapter.methods.text_prior: trains on "
                                          r"texts mapped by the Q-Former, and data.coco is null"):
        validate_params(raw, "p")
    raw = no_coco()
    raw["train_adapter"]["methods"]["linear"]["text_mapping"] = ["qformer"]
    with pytest.raises(ParamsError, match=r"^p: train_adapter.methods.linear.text_mapping: "
                                          r"\['qformer'\] needs the Q-Former"):
        validate_params(raw, "p")


def test_without_coco_linear_trains_its_raw_text_columns_only():
    params = validate_params(no_coco(), "p")
    assert not params.has_qformer and not params.data.has_coco
    assert params.train_adapter.methods["linear"].text_mapping == ["qformer", "none"]  # as written
    assert params.with_prior_sets().methods["linear"].text_mapping == ["none"]  # as trained
    raw = no_coco()
    raw["train_adapter"]["methods"]["linear"]["text_mapping"] = ["none"]  # said outright: fine
    assert validate_params(raw, "p").with_prior_sets().methods["linear"].text_mapping == ["none"]


def test_with_coco_nothing_changes():
    params = validate_params(preset_tree("demo", Path("presets")), "p")
    assert params.has_qformer
    assert params.with_prior_sets().methods["linear"].text_mapping == ["qformer", "none"]
    raw = preset_tree("demo", Path("presets"))
    raw["train_adapter"]["methods"]["linear"]["text_mapping"] = ["none"]
    with pytest.raises(ParamsError, match=r"linear.text_mapping: must hold 'qformer'"):
        validate_params(raw, "p")
    raw = preset_tree("demo", Path("presets"))
    raw["data"]["coco"] = 3
    with pytest.raises(ParamsError, match=r"^p: data.coco: Input should be a valid string"):
        validate_params(raw, "p")


def test_the_recipe_in_docs_data_md_is_valid_params():
    from stages.params import Params
    from stages.preset import merge

    page = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    recipe = page.split("### Your own folder of images (no COCO)")[1].split("```yaml")[1]
    changes = yaml.safe_load(recipe.split("```")[0])
    params = validate_params(merge(Params().model_dump(), changes, Params), "docs/data.md")
    assert not params.has_qformer
    assert params.with_prior_sets().methods["linear"].text_mapping == ["none"]


# --- the library's pieces ---------------------------------------------------------------------

def draw_birds(folder: Path, train: int = TRAIN, test: int = TEST) -> None:
    """<folder>/{train,test}/<class>/<n>.jpg, each a bird of its class's look."""
    from pipeline.data.bird_drawing import draw_bird

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for name, look in CLASSES.items():
            (folder / split / name).mkdir(parents=True)
            for n in range(count):
                draw_bird(look, "sky", 48, rng).save(folder / split / name / f"{n}.jpg")


def test_the_data_stage_indexes_the_target_alone(tmp_path):
    from pipeline.data import index_datasets

    draw_birds(tmp_path / "birds", train=2, test=1)
    settings = validate_params(no_coco(data={"root": str(tmp_path)}), "p").data
    index = index_datasets(settings)
    assert len(index.tables["target_images"]) == 9
    assert index.tables["coco_images"].empty and index.tables["coco_captions"].empty
    assert list(index.tables["coco_images"].columns) == ["image_id", "path", "split"]
    assert set(index.folders) == {"target_images"}  # no COCO folder to name
    assert index.summary(settings).endswith(
        "no COCO (data.coco: null): no Q-Former, so its columns are left out")


def test_the_record_of_no_qformer_is_refused_as_a_checkpoint(tmp_path):
    from pipeline.common import InputError
    from pipeline.qformer import absent_reason, load_qformer, save_absent

    save_absent(tmp_path, {"model_name": "m"})
    assert "data.coco is null" in absent_reason(tmp_path)
    (tmp_path / "qformer.json").write_text("{}")  # a stale checkpoint beside it
    with pytest.raises(InputError, match="no Q-Former at .*: data.coco is null"):
        load_qformer(tmp_path)


def test_linear_without_mapped_rows_trains_on_the_raw_texts():
    """Unmapped inputs lay the raw texts right after the images: a run's text rows are those, by
    the same draw as with a Q-Former (where they sit after the mapped rows)."""
    import torch

    from pipeline.adapter.inputs import AdapterInputs
    from pipeline.adapter.methods.linear import LinearAdapter, grid_runs
    from pipeline.adapter.settings import TrainAdapter
    from pipeline.adapter.training_mix import build_training_table

    images = pd.DataFrame({"image_id": np.arange(1, 21), "class_id": np.repeat([1, 2], 10),
                           "split": "train"})
    described = pd.DataFrame({"class_id": [1, 1, 2, 2], "text": list("abcd")})
    table, _, _ = build_training_table(images, pd.DataFrame({"image_id": np.empty(0, np.int64)}),
                                       described, np.array([1, 2]))
    protocol = TrainAdapter(selection=["class_balanced"], seeds=[0], descriptions_per_image=2)

    def rows(mapped: bool, mapping: str):
        n = len(table.images) + table.texts * (2 if mapped else 1)
        inputs = AdapterInputs(torch.zeros(n, 4), torch.zeros(n), table, np.array([1, 2]),
                               {}, mapped=mapped)
        runs, parts = grid_runs(inputs, protocol, LinearAdapter(text_mapping=[mapping]))
        return {run.name: part.pool for run, part in zip(runs, parts)
                if run.text_source == "descriptions"}

    unmapped, with_qformer = rows(False, "none"), rows(True, "none")
    assert unmapped.keys() == with_qformer.keys()
    for name, pool in unmapped.items():  # images 0-19, then the 4 raw texts at 20-23
        texts = pool[pool >= 20]
        assert len(texts) and texts.max() < 24
        np.testing.assert_array_equal(texts + table.texts, with_qformer[name][pool >= 20])
    with pytest.raises(ValueError, match="needs inputs with mapped texts"):
        rows(False, "qformer")


def test_the_report_says_why_there_is_no_qformer_column():
    from pipeline.report import NO_QFORMER, RunContext

    assert NO_QFORMER.count(". ") == 0 and NO_QFORMER.endswith(".")  # one sentence
    assert "data.coco is null" in NO_QFORMER
    assert NO_QFORMER in RunContext(qformer=False).what_ran()
    assert NO_QFORMER not in RunContext().what_ran()


# --- end to end: dvc repro of a folder of images ----------------------------------------------

@pytest.mark.e2e
def test_a_folder_of_images_runs_every_stage_that_needs_no_coco(tmp_path):
    import torch

    from pipeline.clip.loading import create_clip
    from pipeline.report import NO_QFORMER

    project = copy_repo(tmp_path / "project", skip=("tests/",))
    draw_birds(project / "data" / "birds")
    (project / "data" / "own.yaml").write_text(yaml.safe_dump(
        {name.replace("_", " "): [f"a {name.split('_')[0].lower()} bird", "a bird"]
         for name in CLASSES}))
    torch.manual_seed(0)  # "pretrained" weights: a random CLIP saved as a checkpoint file
    torch.save(create_clip("fgvc-demo-micro", None).model.state_dict(), project / "w.pt")
    raw = no_coco(
        describe={"sets": {}, "controls": {},
                  "files": {"own": {"backend": "file", "path": "data/own.yaml",
                                                       "target": "cub"}}},
        train_adapter={"descriptions": "own", "priors": ["own"], "selection": ["class_balanced"],
                       "budgets": {"ratios": [50, 100], "shots": [1, 2], "seeds": [1],
                                   "folds": 2},
                       "methods": {"linear": {"steps": 10, "batch_size": 16}, "probe": {},
                                   "text_prior": {}, "tip": {}}},
        zeroshot={"templates": ["classname"], "descriptions": ["own"]},
        extract={"shard_rows": 16})
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *command],
                       cwd=project, check=True, capture_output=True)

    # What `dvc repro` runs, by hand in this process (no torch start-up for each of its 17
    # stages); `dvc commit` then finds every output each stage declares, `dvc status` nothing stale
    ran = run_stages_by_hand(project)
    dvc(project, "commit", "-f")
    assert "no COCO (data.coco: null)" in ran and "42 images (30 train, 12 test)" in ran
    assert "train_qformer@own: no Q-Former: data.coco is null" in ran
    assert "Data and pipelines are up to date." in dvc(project, "status")
    checkpoint = project / "artifacts" / "train_qformer" / "own" / "checkpoint"
    assert [p.name for p in checkpoint.iterdir()] == ["no_qformer.json"]

    results = pd.read_parquet(project / "artifacts" / "evaluate" / "cub" / "own" / "results.parquet")
    assert set(results["method"]) == {"linear", "probe", "text_prior", "tip"}
    linear = results[results["method"] == "linear"]
    texts = linear[linear["text_source"] != "none"]
    assert len(texts) and set(texts["text_mapping"]) == {"none"}  # no mapped-text column
    zeroshot = pd.read_parquet(project / "artifacts" / "zeroshot" / "cub" / "own" / "results.parquet")
    assert {"clip", "cbd", "linear_probe"} <= set(zeroshot["method"])

    report = project / "artifacts" / "report" / "cub"
    table = pd.read_csv(report / "table1.csv")
    assert set(table["text_source"]) == {"none", "descriptions_unmapped"}
    markdown = (report / "table1.md").read_text()
    assert NO_QFORMER in markdown and NO_QFORMER in ran
    metrics = json.loads((project / "artifacts" / "evaluate" / "cub" / "own" / "metrics.json")
                         .read_text())
    assert metrics["adapter_top1"] and all(
        "unmapped" in key or key.startswith("image_") for key in metrics["adapter_top1"])
