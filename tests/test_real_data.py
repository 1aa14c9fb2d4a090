"""Real data as a user has it: an ImageFolder target without per-image captions, in a data folder
that DVC tracks (a changed image reruns only what reads it, and re-encodes only its shard), and
outputs that hold no machine-specific path.

The data is a small demo world rewritten as a user's `<class>/<image>` folders.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import copy_repo, dvc, run_by_hand, run_stages_by_hand
from pipeline.data import DemoWorldSpec, generate_demo_world

pytestmark = pytest.mark.e2e
CLASSES = 4


def imagefolder_data(world: Path, data: Path) -> None:
    """data/cars/{train,test}/<class>/<image> from the world's CUB images, data/coco as it is,
    and a descriptions file of the user's own."""
    cub = world / "CUB_200_2011"
    images = pd.read_csv(cub / "images.txt", sep=" ", names=["id", "path"])
    split = pd.read_csv(cub / "train_test_split.txt", sep=" ", names=["id", "train"])
    for path, train in zip(images["path"], images.merge(split, on="id")["train"]):
        target = data / "cars" / ("train" if train else "test") / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cub / "images" / path, target)
    shutil.copytree(world / "coco", data / "coco")
    classes = sorted(p.name for p in (data / "cars" / "train").iterdir())
    (data / "own.yaml").write_text(yaml.safe_dump(
        {c.replace("_", " "): [f"a picture of a {c.split('.')[-1]}", "a vehicle"] for c in classes}))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real")
    world = root / "world"
    generate_demo_world(world, DemoWorldSpec(num_classes=CLASSES, train_per_class=12,
                                             test_per_class=6, coco_images=120, image_size=48),
                        show_progress=False)
    project = root / "project"
    copy_repo(project, skip=("tests/",))
    imagefolder_data(world, root / "elsewhere")
    (project / "data").symlink_to(root / "elsewhere")  # as the README advises
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(demo={}, root="data", captions=None, target={
        "format": "imagefolder", "path": "cars", "split_file": None, "class_names": None})
    params["clip"].update(adapter_backbones=["demo-micro"],
                          backbones={"demo-micro": params["clip"]["backbones"]["demo-micro"]})
    params["clip"]["demo_train"].update(epochs=1, batch_size=32)
    params["describe"].update(sets={}, controls={},
                              files={"own": {"backend": "file", "path": "data/own.yaml",
                                                       "target": "cub"}})
    params["extract"]["shard_rows"] = 16  # 72 target images: 5 shards
    params["train_qformer"].update(epochs=1, batch_size=64)
    params["train_adapter"].update(descriptions="own", priors=["own"], methods={"linear": {
        "steps": 10, "batch_size": 16, "text_mapping": ["qformer"]}})
    params["zeroshot"].update(templates=["classname"], descriptions=["own"])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(["git", *command], cwd=project, check=True, capture_output=True)
    return project


def test_a_changed_image_reruns_only_what_reads_it_and_its_shard(project):
    """What `dvc repro extract_target_images@cub-demo-micro` runs, by hand in this process (no
    torch start-up per stage) and recorded with `dvc commit`; what reruns after the change is
    what `dvc status` lists, before and after it ran."""
    extract = "extract_target_images@cub-demo-micro"
    first = run_stages_by_hand(project, "data@cub", "data_coco", "clip@demo-micro", extract)
    dvc(project, "commit", "-f", extract, "--with-deps")
    assert dvc(project, "status", extract, "--with-deps").strip() == (
        "Data and pipelines are up to date.")
    assert "no per-image captions" in first and "72 images (48 train, 24 test)" in first
    lock = (project / "dvc.lock").read_text()
    assert str(project.parent) not in lock  # no machine-specific path: teammates share it
    assert "- path: data\n" in lock and "- path: artifacts/data/index/cub/images.sha256" in lock

    image = sorted((project / "data" / "cars" / "test").rglob("*.jpg"))[0]
    shutil.copy(sorted((project / "data" / "cars" / "train").rglob("*.jpg"))[0], image)
    status = dvc(project, "status")
    assert "data@cub:" in status and "modified:" in status
    assert "clip@demo-micro" not in status  # it reads COCO only
    # the encoding stage depends on the target's index and its images' checksums, not on the
    # folder: stale once data@cub has written the changed image's checksum
    second = run_stages_by_hand(project, "data@cub", extract)
    assert "5 shard(s): 1 computed, 4 kept from an earlier run" in second
    status = json.loads(dvc(project, "status", "--json", extract, "--with-deps"))
    # the new index leaves clip@demo-micro as it was (data_coco depends on data.root too: its
    # tables are the same bytes, so nothing of COCO's reruns)
    assert set(status) == {"data@cub", "data_coco", extract}
    dvc(project, "commit", "-f", extract, "--with-deps")


def test_a_teammate_with_the_data_elsewhere_shares_every_output(project, tmp_path):
    """Machine B keeps the same data at another place (its own `data` symlink): it pulls what A
    pushed, and nothing A ran is stale or runs again."""
    dvc(project, "repro", "extract_target_images@cub-demo-micro")
    dvc(project, "remote", "add", "-d", "team", str(tmp_path / "remote"))
    dvc(project, "push")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "features"], cwd=project, check=True)
    teammate = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(project), str(teammate)], check=True)
    shutil.copytree(project / "data", tmp_path / "their-disk" / "datasets")
    (teammate / "data").symlink_to(tmp_path / "their-disk" / "datasets")
    dvc(teammate, "pull", "--with-deps", "extract_target_images@cub-demo-micro")  # what A ran
    ran = ["data@cub", "clip@demo-micro", "extract_target_images@cub-demo-micro"]
    assert dvc(teammate, "status", *ran).strip() == "Data and pipelines are up to date."
    assert "Running stage" not in dvc(teammate, "repro", "extract_target_images@cub-demo-micro")
    for output in ("artifacts/data/index/cub/target_images.parquet",
                   "artifacts/clip/demo-micro/card.json"):
        assert (teammate / output).read_bytes() == (project / output).read_bytes()


def test_an_imagefolder_target_without_captions_has_no_caption_column(project):
    dvc(project, "repro", "describe_file@own")
    for name in ("coco_images", "coco_captions", "target_captions", "descriptions", "templates"):
        run_by_hand(project, "extract", name)
    for command in ("train_qformer", "train_adapter", "evaluate", "zeroshot", "report"):
        run_by_hand(project, command)
    report = project / "artifacts" / "report" / "cub"
    table = pd.read_csv(report / "table1.csv")
    assert set(table["text_source"]) == {"none", "descriptions"}  # no caption column at all
    assert table["paper_top1"].isna().all()  # the paper's numbers are CUB's
    markdown = (report / "table1.md").read_text()
    assert "captions" not in markdown.split("## selection")[1] and "not shown" in markdown
    metrics = yaml.safe_load((project / "artifacts" / "evaluate" / "cub" / "demo-micro" / "metrics.json")
                             .read_text())
    assert not [key for key in metrics["adapter_top1"] if "captions" in key]
    run = yaml.safe_load((project / "artifacts" / "zeroshot" / "cub" / "demo-micro" / "run.json").read_text())
    assert run["dataset"] == f"cars ({CLASSES} classes)"  # the target folder: not CUB
