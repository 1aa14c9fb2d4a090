"""Stage `zeroshot@<backbone>`: the seed papers' baselines (`zeroshot.baselines`: CLIP per
template set, CBD per description set, CLIP's linear probe, ...) on one backbone of
`clip.backbones`, scored on the test images from the feature sets `extract` wrote. Writes into
<out>/<backbone>/: results.parquet (one row per baseline variant, top-1 / top-5 %),
details/<table>.parquet (CBD's explanations, the probe's validation accuracies), pictures/ (a
few CBD decisions drawn beside their images), run.json (what was run) and metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from stages.common import BACKBONE_ARGUMENT, PARAMS_OPTION, chosen_backbone, resolve_device
from stages.layout import artifact_option, backbone_option, backbone_path, require, require_features
from stages.params import load_params


def main(backbone: Optional[str] = BACKBONE_ARGUMENT,
         index: Path = artifact_option("data", "index", help="Index tables of `data`."),
         features: Optional[Path] = backbone_option("extract", help="The backbone's feature sets."),
         clip_dir: Optional[Path] = backbone_option("clip", help="The resolved CLIP.",
                                                    flag="--clip"),
         out: Optional[Path] = backbone_option("zeroshot", help="Output folder."),
         params: Path = PARAMS_OPTION) -> None:
    """Score the zero-shot baselines and CLIP's linear probe on one backbone, with per-image
    explanations."""
    settings = load_params(params)
    backbone = chosen_backbone(settings.clip, backbone)
    clip_dir = require(clip_dir or backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    features = features or backbone_path("extract", backbone)
    require_features(features, backbone, "target_images", "templates", "descriptions")
    for table in ("target_images", "target_classes"):
        require(index / f"{table}.parquet", made_by="data")

    from pipeline.clip import read_card
    from pipeline.zeroshot import score_baselines

    describe = settings.describe
    described = {name: describe.provenance(name) for name in settings.zeroshot.descriptions}
    result = score_baselines(backbone, features, index, settings.zeroshot, read_card(clip_dir),
                             described, settings.data.dataset_name,
                             resolve_device(settings.zeroshot.device, "zeroshot.device"))
    result.save(out or backbone_path("zeroshot", backbone))
    for line in result.summary():
        print(f"zeroshot@{backbone}: {line}")
