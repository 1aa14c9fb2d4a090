"""CLI smoke tests: every stage answers --help, and the cheap stages run for real."""

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from stages.cli import app

from conftest import REPO

STAGES = ["data", "clip", "describe", "extract", "train_qformer", "train_adapter", "evaluate", "report"]
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


def test_data_and_describe_stages_run_on_a_small_demo(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["demo"].update(num_classes=4, train_per_class=3, test_per_class=2,
                                  coco_images=100, image_size=48)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = str(tmp_path / "params.yaml")
    result = runner.invoke(app, ["data", "--params", p, "--world", str(tmp_path / "world"),
                                 "--out", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    assert "20 CUB images in 4 classes (12 train)" in result.output
    images = pd.read_parquet(tmp_path / "index" / "cub_images.parquet")
    assert list(images.columns) == ["image_id", "path", "class_id", "class_name", "split"]
    result = runner.invoke(app, ["describe", "--params", p, "--index", str(tmp_path / "index"),
                                 "--out", str(tmp_path / "d.parquet")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "d.parquet")) == 4 * params["describe"]["samples_per_class"]


def test_unknown_feature_set_is_refused(tmp_path):
    result = runner.invoke(app, ["extract", "faces", "--out", str(tmp_path / "x"),
                                 "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 2
    assert "unknown feature set 'faces'" in result.output
