"""Stage `clip@<backbone>`: resolve one frozen CLIP of `clip.backbones` into
<out>/<backbone>/{model.safetensors, card.json}. One stage per backbone, so adding a backbone
resolves only that one; `clip.backbone` names the one the adapter pipeline runs on, and every
backbone is scored zero-shot.

With a pretrained tag (e.g. ViT-B-32 + openai) the weights come from open_clip's hub and are
pinned here. With `pretrained: null` (the demo), the model is trained contrastively on the
COCO-like train pairs of the data stage, so its text and image features are really aligned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.common import InputError, read_parquet_with_metadata
from stages.common import PARAMS_OPTION
from stages.layout import artifact_option, require
from stages.params import ParamsError, load_params


def main(name: Optional[str] = typer.Argument(None, help="The backbone to resolve, a key of "
                                              "clip.backbones. Default: clip.backbone."),
         index: Path = artifact_option("data", "index", help="Index tables of `data`."),
         out: Path = artifact_option("clip", help="Folder of the backbones: writes <out>/<name>/."),
         params: Path = PARAMS_OPTION) -> None:
    """Resolve one frozen CLIP (download pretrained weights, or train a demo CLIP)."""
    clip_params = load_params(params).clip
    name = clip_params.backbone if name is None else name
    if name not in clip_params.backbones:
        raise ParamsError(f"clip.backbones has no backbone {name!r} (backbones: "
                          f"{', '.join(clip_params.backbones)})")
    config = clip_params.backbones[name]
    if config.pretrained is None:  # checked before the model is built: training needs the data
        for table in ("coco_images", "coco_captions"):
            require(index / f"{table}.parquet", made_by="data")

    import torch

    from pipeline.clip import create_clip, save_clip, train_demo_clip

    if config.pretrained is not None:
        print(f"clip: {config.model} with the {config.pretrained!r} weights (from the Hugging "
              "Face hub, or its cache)")
    torch.manual_seed(clip_params.demo_train.seed)  # a random init (the demo's) is seeded too
    try:
        clip = create_clip(config.model, config.pretrained)
    except InputError as error:
        raise InputError(f"clip.backbones.{name}: {error}") from None
    extra = {}
    if config.pretrained is None:
        train = clip_params.demo_train
        images, meta = read_parquet_with_metadata(index / "coco_images.parquet")
        captions, _ = read_parquet_with_metadata(index / "coco_captions.parquet")
        try:
            history = train_demo_clip(clip, images, captions, Path(meta["fgvc.root"]),
                                      epochs=train.epochs, batch_size=train.batch_size,
                                      lr=train.lr, weight_decay=train.weight_decay, seed=train.seed)
        except InputError as error:
            raise InputError(f"clip.demo_train: {error}") from None
        extra = {"trained_on": "demo COCO-like train+restval pairs",
                 "training": train.model_dump(), "loss_per_epoch": history}
    card = save_clip(clip, out / name, extra)
    print(f"clip@{name}: {card['model_name']} ({card['pretrained'] or 'trained here'}), width "
          f"{card['embed_dim']}, sha256 {card['weights_sha256'][:12]}")
