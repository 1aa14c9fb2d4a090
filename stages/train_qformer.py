"""Stage `train_qformer`: train the Q-Former on the cached COCO caption/image features.

Train pairs: Karpathy train + restval; held-out figures each epoch on Karpathy val.
Outputs: <out>/qformer.safetensors + qformer.json (config, CLIP fingerprint, final figures),
and <metrics> (per-epoch curves as CSV, declared as a DVC plot).
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, params_or_exit, resolve_device


def main(features: Path = typer.Option(Path("artifacts/extract"), help="Feature sets of `extract`."),
         clip_dir: Path = typer.Option(Path("artifacts/clip"), "--clip", help="The resolved CLIP."),
         out: Path = typer.Option(Path("artifacts/train_qformer"), help="Checkpoint folder."),
         curves: Path = typer.Option(Path("artifacts/train_qformer/curves.csv"),
                                     help="Per-epoch training curves (CSV)."),
         params: Path = PARAMS_OPTION) -> None:
    """Train the Q-Former that maps CLIP text features to pseudo CLIP image features."""
    import numpy as np
    import pandas as pd
    import torch

    from pipeline.clip import fingerprint_of, read_card
    from pipeline.features import read_feature_set
    from pipeline.qformer import QFormerConfig, TextToImageQFormer, save_qformer
    from pipeline.qformer_training import train_qformer

    config = params_or_exit(params).train_qformer
    device = torch.device(resolve_device(config.device))
    fingerprint = fingerprint_of(read_card(clip_dir))
    images = read_feature_set(features / "coco_images", fingerprint)
    captions = read_feature_set(features / "coco_captions", fingerprint)
    row_of = pd.Series(np.arange(len(images.ids)), index=images.ids["image_id"])
    caption_row = row_of.loc[captions.ids["image_id"]].to_numpy()
    caption_split = images.ids["split"].to_numpy()[caption_row]

    def tensor(array):
        return torch.as_tensor(array, dtype=torch.float32, device=device)

    train = np.isin(caption_split, ["train", "restval"])
    val = caption_split == "val"
    val_image_rows, val_caption_image = np.unique(caption_row[val], return_inverse=True)
    torch.manual_seed(config.seed)  # the initial weights too, not only the training order
    model = TextToImageQFormer(QFormerConfig(
        text_width=captions.manifest["width"], image_width=images.manifest["width"],
        **config.model_dump(include={"num_queries", "hidden_size", "num_layers", "num_heads",
                                     "intermediate_size", "cross_attention_frequency", "pooling",
                                     "dropout"}))).to(device)
    history = train_qformer(
        model, tensor(captions.embeddings[train]), tensor(images.embeddings[caption_row[train]]),
        val_text=tensor(captions.embeddings[val]), val_images=tensor(images.embeddings[val_image_rows]),
        val_caption_image=torch.as_tensor(val_caption_image, device=device),
        **config.model_dump(include={"loss", "margin", "weighting", "temperature", "epochs",
                                     "batch_size", "lr", "weight_decay", "warmup_fraction",
                                     "grad_clip", "seed"}))
    save_qformer(model, out, {"clip_fingerprint": fingerprint, "text_input": config.text_input,
                              "untrained": history[0], "final": history[-1]})
    tmp = curves.with_name(curves.name + ".tmp")
    pd.DataFrame(history).to_csv(tmp, index=False)
    tmp.replace(curves)
    first, last = history[0], history[-1]
    print(f"train_qformer: held-out matched cosine {first['mean_matched_cosine']:.3f} -> "
          f"{last['mean_matched_cosine']:.3f}, R@1 {first['recall_at_1']:.1f} -> "
          f"{last['recall_at_1']:.1f}, R@5 {first['recall_at_5']:.1f} -> {last['recall_at_5']:.1f}")
