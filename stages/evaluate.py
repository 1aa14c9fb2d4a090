"""Stage `evaluate@<backbone>`: top-1 / top-5 on the target's test split for every adapter of
one backbone, each method of `train_adapter.methods` from its folder (zero-shot figures are the
`zeroshot` stage's). Outputs in <out>: results.parquet (one row per adapter), per-class accuracy and confusion counts (`per_class.parquet`,
`confusion.parquet`: every adapter, long format), and metrics.json (the headline figures, a DVC
metrics file)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from stages.common import BACKBONE_ARGUMENT, PARAMS_OPTION, chosen_backbone
from stages.layout import backbone_option, backbone_path, require, require_features
from stages.params import load_params


def main(backbone: Optional[str] = BACKBONE_ARGUMENT,
         features: Optional[Path] = backbone_option("extract", help="The backbone's feature sets."),
         clip_dir: Optional[Path] = backbone_option("clip", help="The resolved CLIP.",
                                                    flag="--clip"),
         adapters: Optional[Path] = backbone_option("train_adapter", help="Its adapters."),
         out: Optional[Path] = backbone_option("evaluate", help="Folder for the results and "
                                               "metrics."),
         params: Path = PARAMS_OPTION) -> None:
    """Score every adapter of a backbone on the test images."""
    settings = load_params(params)
    backbone = chosen_backbone(settings.clip, backbone)
    clip_dir = require(clip_dir or backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    features = features or backbone_path("extract", backbone)
    require_features(features, backbone, "target_images")
    adapters = require(adapters or backbone_path("train_adapter", backbone),
                       made_by=f"train_adapter@{backbone}-<method>")

    from pipeline.adapter import evaluate_adapters
    from pipeline.clip import fingerprint_of, read_card
    from pipeline.features import read_feature_set

    fingerprint = fingerprint_of(read_card(clip_dir))
    evaluation = evaluate_adapters(adapters, read_feature_set(features / "target_images",
                                                              fingerprint), fingerprint,
                                   list(settings.train_adapter.methods))
    evaluation.save(out or backbone_path("evaluate", backbone))
    print(f"evaluate@{backbone}: {evaluation.summary()}")
