"""Stage `train_adapter@<target>-<backbone>-<method>`: one adapter method of
`train_adapter.methods` (the paper's linear adapter: the Table-1 grid of image ratio x text
source x selection x seed, as stacked heads; the few-shot methods: one classifier per budget and
seed) trained on one target's cached features of one backbone. By hand, with no method named,
every method of the params.

Outputs in <out> (the backbone's adapters folder): one folder per method, with method.json (the
method and the CLIP fingerprint) and what the method saves (the linear grid: heads.safetensors,
heads.json, runs.parquet, kept_images.parquet and val_images.parquet, which images each run kept
and was validated on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stages.common import (BACKBONE_ARGUMENT, PARAMS_OPTION, TARGET_OPTION, chosen_backbone,
                           resolve_device)
from stages.layout import backbone_option, backbone_path, require, require_features, target_path
from stages.params import load_params


def main(backbone: Optional[str] = BACKBONE_ARGUMENT,
         methods: Optional[list[str]] = typer.Argument(
             None, help="The methods to train, keys of train_adapter.methods, after the "
             "backbone (fgvc train_adapter demo-tiny probe tip). Default: all."),
         target: Optional[str] = TARGET_OPTION,
         features: Optional[Path] = backbone_option("extract", help="The target's feature sets "
                                                    "of the backbone."),
         clip_dir: Optional[Path] = backbone_option("clip", help="The resolved CLIP.",
                                                    flag="--clip", target=False),
         qformer: Optional[Path] = backbone_option("train_qformer", "checkpoint",
                                                   help="The backbone's Q-Former checkpoint.",
                                                   target=False),
         out: Optional[Path] = backbone_option(
             "train_adapter", help="The target's adapters folder of the backbone: each method "
             "in <out>/<method>/."),
         params: Path = PARAMS_OPTION) -> None:
    """Train adapter methods on the backbone's features, each method's whole grid in one job."""
    settings = load_params(params).for_target(target)
    target, backbone = settings.target, chosen_backbone(settings.clip, backbone)
    clip_dir = require(clip_dir or backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    features = features or target_path("extract", target, backbone)
    require_features(features, backbone, "target_images", "target_captions", "descriptions",
                     target=target)
    # Required of every method, though only those that train on mapped texts read it: one
    # matrix stage's deps are the same for all its methods (so a new Q-Former reruns all).
    # Without COCO (data.coco: null) there is none: no method maps texts (params say so).
    if settings.has_qformer:
        qformer = require(qformer or backbone_path("train_qformer", backbone, "checkpoint"),
                          made_by=f"train_qformer@{backbone}")
    else:
        qformer = None

    from pipeline.adapter import train_adapters
    from pipeline.clip import fingerprint_of, read_card

    device = resolve_device(settings.train_adapter.device, "train_adapter.device")
    if settings.train_adapter.cpu_threads:
        import torch

        torch.set_num_threads(settings.train_adapter.cpu_threads)
    trained = train_adapters(features, fingerprint_of(read_card(clip_dir)), qformer,
                             settings.with_prior_sets(), device, methods or None)
    trained.save(out or target_path("train_adapter", target, backbone))
    for method, line in trained.summary():
        print(f"train_adapter@{target}-{backbone}-{method}: {line}")
