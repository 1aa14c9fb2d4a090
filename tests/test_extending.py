"""The extension points hold: a zero-shot baseline, an adapter method and a target format, each
written outside the library (tests/plugins/, one module each that registers itself), run
through the real, unedited stages once their params entry names them. That is what adding one
costs: its module, its test, its params entry."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO, run_by_hand
from pipeline.common import write_parquet
from pipeline.features import write_feature_set
from stages.params import ParamsError, validate_params

BACKBONE = "demo-tiny"
CARD = {"library": "open_clip", "model_name": "fgvc-demo-tiny", "pretrained": None,
        "weights_sha256": "f" * 64, "embed_dim": 8, "preprocess": {"size": [64, 64]}}
FINGERPRINT = {key: CARD[key] for key in ("model_name", "pretrained", "weights_sha256",
                                           "embed_dim", "preprocess")}
CLASSES = ["Alpha Finch", "Beta Warbler", "Gamma Tern"]


def params_with(tmp_path, edit) -> str:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return str(tmp_path / "params.yaml")


@pytest.fixture
def features(tmp_path):
    """One backbone's feature sets, made by hand: 3 well separated classes of 10 train and 10
    test images each, a template set, a description set, no captions; the index tables and
    the CLIP's card that go with them."""
    (tmp_path / "clip" / BACKBONE).mkdir(parents=True)
    (tmp_path / "clip" / BACKBONE / "card.json").write_text(json.dumps(CARD))
    rng = np.random.default_rng(0)
    centres = 3 * rng.normal(size=(3, 8))
    images = pd.DataFrame({"image_id": np.arange(1, 61), "class_id": np.repeat([1, 2, 3], 20),
                           "split": np.tile(["train"] * 10 + ["test"] * 10, 3)})
    extract = tmp_path / "extract" / BACKBONE

    def write(folder, ids, embeddings):
        write_feature_set(extract / folder, ids, embeddings.astype(np.float32), name=folder,
                          fingerprint=FINGERPRINT, shard_rows=64, precision="float32")

    write("target_images", images, centres[images["class_id"] - 1] + rng.normal(size=(60, 8)))
    write("templates/paper", pd.DataFrame({"class_id": [1, 2, 3], "template_index": 0,
                                           "template": "a photo of a {}.",
                                           "text": [f"a photo of a {c}." for c in CLASSES]}),
          centres)
    write("descriptions/attributes", pd.DataFrame(
        {"class_id": [1, 2, 3], "sample_index": 0, "prompt_id": "x",
         "text": [f"{c}, which is a bird" for c in CLASSES]}), centres)
    write("target_captions", pd.DataFrame({"image_id": np.zeros(0, np.int64),
                                           "caption_index": np.zeros(0, np.int32),
                                           "text": np.zeros(0, str)}), np.zeros((0, 8)))
    index = tmp_path / "index"
    write_parquet(index / "target_images.parquet", images.assign(
        path=[f"images/{i}.jpg" for i in images["image_id"]],
        class_name=[CLASSES[c - 1] for c in images["class_id"]]), {"fgvc.root": str(tmp_path)})
    write_parquet(index / "target_classes.parquet", pd.DataFrame(
        {"class_id": [1, 2, 3], "class_dir": CLASSES, "class_name": CLASSES}))
    return tmp_path


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
    from pipeline.qformer import QFormerConfig, TextToImageQFormer, save_qformer

    torch.manual_seed(0)
    qformer = features / "qformer"
    save_qformer(TextToImageQFormer(QFormerConfig(text_width=8, image_width=8, num_queries=2,
                                                  hidden_size=16, num_layers=1, num_heads=2,
                                                  intermediate_size=32)), qformer,
                 {"clip_fingerprint": {k: CARD[k] for k in ("model_name", "pretrained",
                                                            "weights_sha256", "embed_dim",
                                                            "preprocess")},
                  "text_input": "pooled"})
    params = params_with(features, lambda p: p["train_adapter"].update(
        selection=["class_balanced"], methods={"class_means": {}}))
    common = ["--params", params, "--features", str(features / "extract" / BACKBONE),
              "--clip", str(features / "clip" / BACKBONE)]
    run_by_hand(features, "train_adapter", BACKBONE, *common, "--qformer", str(qformer),
                "--out", str(features / "adapters"))
    assert json.loads((features / "adapters" / "methods.json").read_text()) == {
        "methods": ["class_means"], "clip_fingerprint": FINGERPRINT}
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
