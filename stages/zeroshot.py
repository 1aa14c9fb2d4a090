"""Stage `zeroshot@<target>-<backbone>`: the seed papers' baselines (`zeroshot.baselines`: CLIP per
template set, CBD per description set, CLIP's linear probe, ...) on one backbone of
`clip.backbones` and one target, scored on the test images from the feature sets `extract`
wrote. Writes into <out> (<paths.zeroshot>/<target>/<backbone>/): results.parquet (one row per
baseline variant, top-1 / top-5 %), details/<table>.parquet (CBD's explanations, the probe's
validation accuracies), pictures/ (a few CBD decisions drawn beside their images), run.json
(what was run) and metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from stages.common import (BACKBONE_ARGUMENT, PARAMS_OPTION, TARGET_OPTION, chosen_backbone,
                           resolve_device)
from stages.layout import (backbone_option, backbone_path, require, require_features,
                           target_option, target_path)
from stages.params import load_params


def main(backbone: Optional[str] = BACKBONE_ARGUMENT,
         target: Optional[str] = TARGET_OPTION,
         index: Optional[Path] = target_option("data", help="The target's index tables."),
         features: Optional[Path] = backbone_option("extract", help="The target's feature sets "
                                                    "of the backbone."),
         clip_dir: Optional[Path] = backbone_option("clip", help="The resolved CLIP.",
                                                    flag="--clip", target=False),
         out: Optional[Path] = backbone_option("zeroshot", help="Output folder."),
         params: Path = PARAMS_OPTION) -> None:
    """Score the zero-shot baselines and CLIP's linear probe on one backbone, with per-image
    explanations."""
    settings = load_params(params).for_target(target)
    target, backbone = settings.target, chosen_backbone(settings.clip, backbone)
    clip_dir = require(clip_dir or backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    features = features or target_path("extract", target, backbone)
    require_features(features, backbone, "target_images", "templates", "descriptions",
                     target=target)
    index = index or target_path("data", target)
    for table in ("target_images", "target_classes"):
        require(index / f"{table}.parquet", made_by=f"data@{target}")

    from pipeline.clip import read_card
    from pipeline.zeroshot import score_baselines

    describe = settings.describe
    described = {name: describe.provenance(name) for name in settings.zeroshot.descriptions}
    result = score_baselines(backbone, features, index, settings.zeroshot, read_card(clip_dir),
                             described, settings.data.dataset_name,
                             resolve_device(settings.zeroshot.device, "zeroshot.device"))
    result.save(out or target_path("zeroshot", target, backbone))
    for line in result.summary():
        print(f"zeroshot@{target}-{backbone}: {line}")
