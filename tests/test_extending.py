"""The extension points hold: a zero-shot baseline, an adapter method and a target format, each
written outside the library (tests/plugins/, one module each that registers itself), run
through the real, unedited stages once their params entry names them. That is what adding one
costs: its module, its test, its params entry."""

import json

import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import BACKBONE, FINGERPRINT, REPO, run_by_hand, write_qformer
from stages.params import ParamsError, validate_params


def params_with(tmp_path, edit) -> str:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return str(tmp_path / "params.yaml")


def test_a_baseline_from_a_test_folder_runs_in_the_zeroshot_stage(features):
    with pytest.raises(ParamsError, match="zeroshot.baselines.nearest_mean: 'nearest_mean' is not a known zero-shot baseline"):
        validate_params({"zeroshot": {"baselines": {"nearest_mean": {}}}}, "params")
    import plugins.nearest_mean  # noqa: F401  (registers it)

    params = params_with(features, lambda p: p["zeroshot"].update(
        templates=["paper"], descriptions=["attributes"],
        baselines={"clip": {}, "nearest_mean": {"temperature": 0.5}}))
    output = run_by_hand(features, "zeroshot", BACKBONE, "--params", params, "--index",
                         str(features / "index"), "--features", str(features / "extract" / BACKBONE),
                         "--clip", str(features / "clip" / BACKBONE), "--out", str(features / "zs"))
    assert "nearest_mean train means" in output
    results = pd.read_parquet(features / "zs" / "results.parquet").set_index("method")
    assert results.loc["nearest_mean", "top1"] == 100.0  # the classes are far apart
    assert results.loc["clip", "variant"] == "paper"
    assert json.loads((features / "zs" / "metrics.json").read_text())[
        "nearest_mean/train means"]["top1"] == 100.0
    written = sorted(p.name for p in (features / "zs").rglob("*"))
    assert written and not [name for name in written if ".tmp" in name or name.startswith(".")]


def test_an_adapter_method_from_a_test_folder_trains_and_is_evaluated(features):
    import plugins.class_means  # noqa: F401  (registers it)
    qformer = write_qformer(features / "qformer")
    params = params_with(features, lambda p: p["train_adapter"].update(
        selection=["class_balanced"], methods={"class_means": {}}))
    common = ["--params", params, "--features", str(features / "extract" / BACKBONE),
              "--clip", str(features / "clip" / BACKBONE)]
    run_by_hand(features, "train_adapter", BACKBONE, *common, "--qformer", str(qformer),
                "--out", str(features / "adapters"))
    assert json.loads((features / "adapters" / "class_means" / "method.json").read_text()) == {
        "method": "class_means", "priors": None, "clip_fingerprint": FINGERPRINT}
    run_by_hand(features, "evaluate", BACKBONE, *common, "--adapters", str(features / "adapters"),
                "--out", str(features / "evaluation"))
    results = pd.read_parquet(features / "evaluation" / "results.parquet")
    assert set(results["method"]) == {"class_means"}
    assert sorted(results["image_ratio"]) == list(range(10, 101, 10))
    assert (results["top1"] == 100.0).all()


def test_a_target_format_from_a_test_folder_is_indexed_by_the_data_stage(tmp_path):
    import plugins.flat_listing  # noqa: F401  (registers it)
    from pipeline.data import DemoWorldSpec, generate_demo_world

    data = tmp_path / "data"
    generate_demo_world(data, DemoWorldSpec(num_classes=2, train_per_class=1, test_per_class=1,
                                            coco_images=100, image_size=32), show_progress=False)
    (data / "flat").mkdir()
    rows = []
    for i, (colour, split) in enumerate([("red", "train"), ("red", "test"), ("blue", "train"),
                                         ("blue", "test")]):
        Image.new("RGB", (16, 16), colour).save(data / "flat" / f"{i}.jpg")
        rows.append({"path": f"{i}.jpg", "class": colour, "split": split})
    pd.DataFrame(rows).to_csv(data / "flat" / "listing.csv", index=False)
    params = params_with(tmp_path, lambda p: p["data"].update(
        demo={}, root=str(data), captions=None,
        target={"format": "flat_listing", "path": "flat", "listing": "listing.csv"}))
    output = run_by_hand(tmp_path, "data", "--params", params, "--out", str(tmp_path / "index"))
    assert "flat: 4 images (2 train, 2 test) in 2 classes, all present" in output
    images = pd.read_parquet(tmp_path / "index" / "target_images.parquet")
    assert images["class_name"].tolist() == ["red", "red", "blue", "blue"]
    with pytest.raises(ParamsError, match="data.target.listng: unknown key"):
        validate_params({"data": {"captions": None, "target": {
            "format": "flat_listing", "path": "flat", "listng": "x.csv"}}}, "params")
