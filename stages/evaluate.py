"""Stage `evaluate@<target>-<backbone>`: top-1 / top-5 on the target's test split for every adapter
of one backbone, each method of `train_adapter.methods` from its folder (zero-shot figures are
the `zeroshot` stage's). Outputs in <out>: results.parquet (one row per adapter), per-class
accuracy and confusion counts (`per_class.parquet`, `confusion.parquet`: every adapter, long
format), and metrics.json (the headline figures, a DVC metrics file)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from stages.common import BACKBONE_ARGUMENT, PARAMS_OPTION, TARGET_OPTION, chosen_backbone
from stages.layout import backbone_option, backbone_path, require, require_features, target_path
from stages.params import load_params


def main(backbone: Optional[str] = BACKBONE_ARGUMENT,
         target: Optional[str] = TARGET_OPTION,
         features: Optional[Path] = backbone_option("extract", help="The target's feature sets "
                                                    "of the backbone."),
         clip_dir: Optional[Path] = backbone_option("clip", help="The resolved CLIP.",
                                                    flag="--clip", target=False),
         adapters: Optional[Path] = backbone_option("train_adapter", help="Its adapters."),
         out: Optional[Path] = backbone_option("evaluate", help="Folder for the results and "
                                               "metrics."),
         params: Path = PARAMS_OPTION) -> None:
    """Score every adapter of a backbone on the test images."""
    settings = load_params(params).for_target(target)
    target, backbone = settings.target, chosen_backbone(settings.clip, backbone)
    clip_dir = require(clip_dir or backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    features = features or target_path("extract", target, backbone)
    require_features(features, backbone, "target_images", target=target)
    adapters = require(adapters or target_path("train_adapter", target, backbone),
                       made_by=f"train_adapter@{target}-{backbone}-<method>")

    from pipeline.adapter import evaluate_adapters
    from pipeline.clip import fingerprint_of, read_card
    from pipeline.features import read_feature_set

    fingerprint = fingerprint_of(read_card(clip_dir))
    evaluation = evaluate_adapters(adapters, read_feature_set(features / "target_images",
                                                              fingerprint), fingerprint,
                                   list(settings.train_adapter.methods))
    evaluation.save(out or target_path("evaluate", target, backbone))
    print(f"evaluate@{target}-{backbone}: {evaluation.summary()}")
