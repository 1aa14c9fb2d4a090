"""Stage `train_qformer`: train the Q-Former on the cached COCO caption/image features.

Train pairs: Karpathy train + restval; held-out figures each epoch on Karpathy val. The text
side is each caption's pooled CLIP feature, or its per-token states (`text_input: tokens`,
extracted with `extract.texts.tokens: true`).
Outputs: <out>/qformer.safetensors + qformer.json (config, text input, CLIP fingerprint, first
and final figures), and <live> (DVCLive: per-epoch curves as DVC plots, last figures as metrics).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from stages.common import PARAMS_OPTION, resolve_device, warn_if_long_on_cpu
from stages.layout import artifact_option, clip_option, require, require_features
from stages.params import load_params


def main(features: Path = artifact_option("extract", help="Feature sets of `extract`."),
         clip_dir: Path = clip_option(),
         out: Path = artifact_option("train_qformer", "checkpoint", help="Checkpoint folder."),
         live: Path = artifact_option("train_qformer", "live",
                                      help="DVCLive folder: per-epoch curves and last figures."),
         params: Path = PARAMS_OPTION) -> None:
    """Train the Q-Former that maps CLIP text features to pseudo CLIP image features."""
    config = load_params(params).train_qformer
    require(clip_dir, made_by=f"clip@{clip_dir.name}")
    require_features(features, "coco_images", "coco_captions")

    import numpy as np
    import pandas as pd
    import torch

    from pipeline.clip import fingerprint_of, read_card
    from pipeline.features import read_feature_set
    from pipeline.qformer import (PooledTexts, QFormerConfig, TextToImageQFormer, TokenTexts,
                                  save_qformer, seconds_per_step, train_qformer)

    device = torch.device(resolve_device(config.device, "train_qformer.device"))
    fingerprint = fingerprint_of(read_card(clip_dir))
    tokens = config.text_input == "tokens"
    images = read_feature_set(features / "coco_images", fingerprint)
    captions = read_feature_set(features / "coco_captions", fingerprint, tokens=tokens)
    row_of = pd.Series(np.arange(len(images.ids)), index=images.ids["image_id"])
    caption_row = row_of.loc[captions.ids["image_id"]].to_numpy()
    caption_split = images.ids["split"].to_numpy()[caption_row]

    def tensor(array):
        return torch.as_tensor(array, dtype=torch.float32, device=device)

    texts = (TokenTexts.from_ragged(captions.tokens, device) if tokens
             else PooledTexts(tensor(captions.embeddings)))
    train = np.isin(caption_split, ["train", "restval"])
    val = caption_split == "val"
    val_image_rows, val_caption_image = np.unique(caption_row[val], return_inverse=True)
    torch.manual_seed(config.seed)  # the initial weights too, not only the training order
    model = TextToImageQFormer(QFormerConfig(
        text_width=texts.width, image_width=images.manifest["width"],
        **config.model_dump(include={"num_queries", "hidden_size", "num_layers", "num_heads",
                                     "intermediate_size", "cross_attention_frequency", "pooling",
                                     "dropout"}))).to(device)
    train_texts = texts.subset(np.flatnonzero(train))
    warn_if_long_on_cpu(device.type, "train_qformer", config.epochs * max(1, len(train_texts)
                                                                       // config.batch_size),
                        lambda: seconds_per_step(model, train_texts, config.batch_size), "steps",
                        "Run it on a GPU machine (train_qformer.device: cuda; README: 'What a run "
                        "costs').")
    with curve_logger(live) as log_epoch:
        history = train_qformer(
            model, train_texts, tensor(images.embeddings[caption_row[train]]),
            val_text=texts.subset(np.flatnonzero(val)),
            val_images=tensor(images.embeddings[val_image_rows]),
            val_caption_image=torch.as_tensor(val_caption_image, device=device), on_epoch=log_epoch,
            compile=config.compiles_on(device.type),
            **config.model_dump(include={"loss", "margin", "weighting", "temperature", "epochs",
                                         "batch_size", "lr", "weight_decay", "warmup_fraction",
                                         "grad_clip", "seed"}))
    save_qformer(model, out, {"clip_fingerprint": fingerprint, "text_input": config.text_input,
                              "untrained": history[0], "final": history[-1]})
    first, last = history[0], history[-1]
    print(f"train_qformer: held-out matched cosine {first['mean_matched_cosine']:.3f} -> "
          f"{last['mean_matched_cosine']:.3f}, R@1 {first['recall_at_1']:.1f} -> "
          f"{last['recall_at_1']:.1f}, R@5 {first['recall_at_5']:.1f} -> {last['recall_at_5']:.1f}")


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
