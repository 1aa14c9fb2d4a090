"""CLI smoke tests: every stage answers --help, and the cheap stages run for real."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner

from stages.cli import app

STAGES = ["demo", "data", "clip", "describe", "extract", "train_qformer", "train_adapter", "evaluate",
          "zeroshot", "report", "preset", "download"]
runner = CliRunner()


def test_top_level_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.output


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage):
    result = runner.invoke(app, [stage, "--help"])
    assert result.exit_code == 0, result.output
    assert "--" in result.output and "Usage" in result.output


def paper_params(tmp_path: Path) -> dict:
    """The cub-paper preset's params, as `fgvc preset cub-paper` writes them."""
    result = runner.invoke(app, ["preset", "cub-paper", "--out", str(tmp_path / "paper.yaml"),
                                 "--presets", str(REPO / "presets")])
    assert result.exit_code == 0, result.output
    return yaml.safe_load((tmp_path / "paper.yaml").read_text())


def small_demo(tmp_path: Path, **sizes) -> str:
    """A params file whose demo world is small, drawn (`fgvc demo`) into tmp_path/worlds, with
    data.root pointing at it; its path."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["demo"]["world"].update(sizes)
    params["data"]["root"] = str(tmp_path / "worlds" / "world")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = str(tmp_path / "params.yaml")
    result = runner.invoke(app, ["demo", "world", "--params", p, "--out", str(tmp_path / "worlds")])
    assert result.exit_code == 0, result.output
    return p


def test_data_and_describe_stages_run_on_a_small_demo(tmp_path):
    p = small_demo(tmp_path, num_classes=4, train_per_class=3, test_per_class=2, coco_images=100,
                   image_size=48)
    result = runner.invoke(app, ["data", "--params", p, "--out", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    assert "CUB_200_2011: 20 images (12 train, 8 test) in 4 classes, all present" in result.output
    images = pd.read_parquet(tmp_path / "index" / "target_images.parquet")
    assert list(images.columns) == ["image_id", "path", "class_id", "class_name", "split"]
    # every indexed image's checksum, in sha256sum's format: what the encoding stages depend on
    folder = tmp_path / "worlds" / "world" / "CUB_200_2011"
    assert (tmp_path / "index" / "images.sha256").read_text().splitlines() == [
        f"{hashlib.sha256((folder / path).read_bytes()).hexdigest()}  {path}"
        for path in images["path"]]
    params = yaml.safe_load(Path(p).read_text())
    for name in params["describe"]["sets"]:
        result = runner.invoke(app, ["describe", name, "--params", p, "--index",
                                     str(tmp_path / "index"), "--out", str(tmp_path / "d")])
        assert result.exit_code == 0, result.output
        table = pd.read_parquet(tmp_path / "d" / f"{name}.parquet")
        assert len(table) == 4 * params["describe"]["samples_per_class"]
    one_trait = pd.read_parquet(tmp_path / "d" / "descriptors.parquet")["text"]
    four_traits = pd.read_parquet(tmp_path / "d" / "attributes.parquet")["text"]
    assert one_trait.str.count(",").sum() < four_traits.str.count(",").sum()


def test_unknown_feature_set_is_refused(tmp_path):
    result = runner.invoke(app, ["extract", "faces", "--out", str(tmp_path / "x"),
                                 "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 2
    assert "unknown feature set 'faces'" in result.output


def test_data_stage_indexes_real_folders_in_place(tmp_path):
    from pipeline.data import DemoWorldSpec, generate_demo_world

    real = tmp_path / "downloads"
    generate_demo_world(real, DemoWorldSpec(num_classes=3, train_per_class=2, test_per_class=1,
                                            coco_images=100, image_size=32), show_progress=False)
    params = paper_params(tmp_path)
    params["data"].update(root=str(real), karpathy_json=None)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["data", "--params", str(tmp_path / "params.yaml"),
                                 "--out", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    assert "9 images (6 train, 3 test) in 3 classes, all present" in result.output
    assert "absolute path" in result.output  # a teammate needs the same path to share outputs
    coco = pd.read_parquet(tmp_path / "index" / "coco_images.parquet")
    assert set(coco["split"]) == {"train", "val"}  # official annotations: no Karpathy split
    import pyarrow.parquet as pq
    meta = pq.read_schema(tmp_path / "index" / "target_images.parquet").metadata
    assert meta[b"fgvc.root"].decode() == (real / "CUB_200_2011").as_posix()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "index", "paper.yaml",
                                                          "params.yaml"]


def test_missing_data_root_is_a_clear_error(tmp_path):
    params = paper_params(tmp_path)
    params["data"].update(root=str(tmp_path / "nowhere"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["data", "--params", str(tmp_path / "params.yaml"),
                                 "--out", str(tmp_path / "i")])
    assert result.exit_code == 1
    assert f"data.root: {tmp_path / 'nowhere'} is not a folder" in result.output
    assert "fgvc download all" in result.output


def test_demo_clip_is_the_same_bytes_on_every_run(tmp_path):
    """Seeded from its random init on: a rerun of `clip` must not change what every later stage
    reads (it once built the model before seeding, and every run drifted)."""
    p = small_demo(tmp_path, num_classes=3, train_per_class=2, test_per_class=1, coco_images=100,
                   image_size=48)
    params = yaml.safe_load(Path(p).read_text())
    params["clip"]["demo_train"].update(epochs=1, batch_size=32)
    Path(p).write_text(yaml.safe_dump(params))
    assert runner.invoke(app, ["data", "--params", p, "--out", str(tmp_path / "index")]
                         ).exit_code == 0
    for backbone in params["clip"]["backbones"]:  # every demo CLIP (e2e's forced repro skips them)
        weights = []
        for run in ("a", "b"):
            result = runner.invoke(app, ["clip", backbone, "--params", p, "--index",
                                         str(tmp_path / "index"), "--out", str(tmp_path / run)])
            assert result.exit_code == 0, result.output
            weights.append((tmp_path / run / backbone / "model.safetensors").read_bytes())
        assert weights[0] == weights[1]


def test_ctrl_c_says_it_was_interrupted_and_what_a_rerun_redoes(capsys):
    """Issue 23: Ctrl-C in a stage ended with exit code 130 and no word. Now one line on stderr
    says so and what a rerun keeps; still 130 (the shell's code for SIGINT), no traceback."""
    import typer

    from stages.common import one_line_errors

    def train():
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as stopped:
        one_line_errors(train)()
    assert stopped.value.exit_code == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted (outputs are renamed into place only when whole): a rerun")
    assert len(err.splitlines()) == 1 and "extract: its written shards" in err
