"""Stage `clip`: resolve the frozen CLIP into <out>/{model.safetensors, card.json}.

With a pretrained tag (e.g. ViT-B-32 + openai) the weights come from open_clip's hub and are
pinned here. With `pretrained: null` (the demo), the model is trained contrastively on the
COCO-like train pairs of the data stage, so its text and image features are really aligned.
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, params_or_exit, read_parquet_with_metadata


def main(index: Path = typer.Option(Path("artifacts/data/index"), help="Index tables of `data`."),
         out: Path = typer.Option(Path("artifacts/clip"), help="Folder for weights and card."),
         params: Path = PARAMS_OPTION) -> None:
    """Resolve the frozen CLIP (download pretrained weights, or train the demo's tiny CLIP)."""
    import torch
    from PIL import Image
    from tqdm import tqdm

    from pipeline.clip import create_clip, save_clip
    from pipeline.clip_training import train_clip_contrastive

    config = params_or_exit(params).clip
    torch.manual_seed(config.demo_train.seed)  # a random init (the demo's) is seeded too
    clip = create_clip(config.model, config.pretrained)
    extra = {}
    if config.pretrained is None:
        train = config.demo_train
        images, meta = read_parquet_with_metadata(index / "coco_images.parquet")
        captions, _ = read_parquet_with_metadata(index / "coco_captions.parquet")
        images = images[images["split"].isin(["train", "restval"])].reset_index(drop=True)
        captions = captions[captions["image_id"].isin(images["image_id"])]
        root = Path(meta["fgvc.root"])
        pixels = torch.stack([clip.preprocess(Image.open(root / p).convert("RGB"))
                              for p in tqdm(images["path"], desc="decode COCO-like images",
                                            unit="img")])
        row_of = {image_id: row for row, image_id in enumerate(images["image_id"])}
        history = train_clip_contrastive(
            clip.model, pixels, clip.tokenizer(captions["text"].tolist()),
            [row_of[i] for i in captions["image_id"]], epochs=train.epochs,
            batch_size=train.batch_size, lr=train.lr, weight_decay=train.weight_decay,
            seed=train.seed)
        extra = {"trained_on": "demo COCO-like train+restval pairs",
                 "training": train.model_dump(), "loss_per_epoch": history}
    card = save_clip(clip, out, extra)
    print(f"clip: {card['model_name']} ({card['pretrained'] or 'trained here'}), width "
          f"{card['embed_dim']}, sha256 {card['weights_sha256'][:12]}")
