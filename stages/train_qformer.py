"""Stage `train_qformer@<backbone>`: train the Q-Former on one backbone's cached COCO
caption/image features (Karpathy train + restval; held-out figures each epoch on Karpathy val).

Outputs: <out>/qformer.safetensors + qformer.json (config, text input, CLIP fingerprint, first
and final figures), and <live> (DVCLive: per-epoch curves as DVC plots, last figures as
metrics). Without COCO (`data.coco: null`) it trains nothing: <out> holds `no_qformer.json`
saying why, <live> an empty metrics file (`pipeline.qformer.absent`).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Optional

import typer

from pipeline.common import write_json
from stages.common import BACKBONE_ARGUMENT, PARAMS_OPTION, chosen_backbone, resolve_device, say
from stages.layout import (backbone_option, backbone_path, require, require_features,
                           shown_path, target_path)
from stages.params import load_params


def main(backbone: Optional[str] = BACKBONE_ARGUMENT,
         features: Optional[Path] = typer.Option(
             None, show_default="/".join([shown_path("extract"), "coco", "<backbone>"]),
             help="The backbone's COCO feature sets."),
         clip_dir: Optional[Path] = backbone_option("clip", help="The resolved CLIP.",
                                                    flag="--clip", target=False),
         out: Optional[Path] = backbone_option("train_qformer", "checkpoint",
                                               help="Checkpoint folder.", target=False),
         live: Optional[Path] = backbone_option("train_qformer", "live", help="DVCLive folder: "
                                                "per-epoch curves and last figures.",
                                                target=False),
         params: Path = PARAMS_OPTION) -> None:
    """Train the Q-Former that maps CLIP text features to pseudo CLIP image features."""
    settings = load_params(params)
    backbone = chosen_backbone(settings.clip, backbone)
    clip_dir = require(clip_dir or backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    features = features or target_path("extract", "coco", backbone)
    require_features(features, backbone, "coco_images", "coco_captions")
    out = out or backbone_path("train_qformer", backbone, "checkpoint")
    live = live or backbone_path("train_qformer", backbone, "live")

    from pipeline.clip import fingerprint_of, read_card

    if not settings.has_qformer:  # no COCO: a record in place of the checkpoint, no curves
        from pipeline.qformer import ABSENT_WHY, save_absent

        save_absent(out, fingerprint_of(read_card(clip_dir)))
        (live / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
        write_json(live / "metrics.json", {})
        print(f"train_qformer@{backbone}: no Q-Former: {ABSENT_WHY}")
        return
    from pipeline.qformer import train_on_coco

    device = resolve_device(settings.train_qformer.device, "train_qformer.device")
    with curve_logger(live) as log:
        trained = train_on_coco(features, fingerprint_of(read_card(clip_dir)),
                                settings.train_qformer, device, say=say("train_qformer"),
                                on_epoch=log)
    trained.save(out)
    print(f"train_qformer@{backbone}: {trained.summary()}")


@contextlib.contextmanager
def curve_logger(folder: Path):
    """Gives `log(figures)` for each epoch's figures, written with DVCLive: one TSV per curve
    under <folder>/plots/metrics (step = epoch; 0 = untrained) and the last figures in
    <folder>/metrics.json, so `dvc plots show` / `dvc plots diff` draw them."""
    from dvclive import Live

    # DVCLive only writes files here: the stage runs under `dvc repro`, which tracks them
    with Live(str(folder), save_dvc_exp=False, dvcyaml=None) as live:
        def log(figures: dict) -> None:
            live.step = int(figures["epoch"])
            for name, value in figures.items():
                if name != "epoch" and not math.isnan(value):  # no loss before training
                    live.log_metric("train/loss" if name == "train_loss" else f"val/{name}", value)
            live.make_summary()

        yield log
