"""Stage `clip@<backbone>`: resolve one frozen CLIP of `clip.backbones` into
<out>/<backbone>/{model.safetensors, card.json, ...}. One stage per backbone, so adding a
backbone resolves only that one; every backbone is scored zero-shot, `clip.adapter_backbones`
also run the adapter chain.

With pretrained weights (open_clip's ViT-B-32 + openai, a Hugging Face model) they come from
the backbone's library and are pinned here. With `pretrained: null` (the demo), the model is
trained contrastively on the COCO-like pairs of the data stage, so its text and image features
are really aligned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pipeline.common import read_parquet_with_metadata
from stages.common import BACKBONE_ARGUMENT, PARAMS_OPTION, chosen_backbone
from stages.layout import artifact_option, require
from stages.params import load_params


def main(name: Optional[str] = BACKBONE_ARGUMENT,
         index: Path = artifact_option("data", "index", help="COCO's index tables (`data_coco`)."),
         out: Path = artifact_option("clip", help="Folder of the backbones: writes <out>/<name>/."),
         params: Path = PARAMS_OPTION) -> None:
    """Resolve one frozen CLIP (download pretrained weights, or train a demo CLIP)."""
    settings = load_params(params).clip
    name = chosen_backbone(settings, name)
    backbone = settings.backbones[name]
    coco = None
    if backbone.pretrained is None:  # checked before the model is built: training needs the data
        from pipeline.clip import CocoPairs

        images, meta = read_parquet_with_metadata(
            require(index / "coco_images.parquet", made_by="data_coco"))
        captions, _ = read_parquet_with_metadata(
            require(index / "coco_captions.parquet", made_by="data_coco"))
        coco = CocoPairs(images, captions, Path(meta["fgvc.root"]))
    else:
        print(f"clip: {backbone.model} with the {backbone.pretrained!r} weights "
              f"({backbone.library}: from its hub, or its cache)")

    from pipeline.clip import resolve_clip, save_clip

    resolved = resolve_clip(name, backbone, settings.demo_train, coco)
    card = save_clip(resolved.clip, out / name, resolved.extra)
    print(f"clip@{name}: {card['model_name']} ({card['pretrained'] or 'trained here'}), width "
          f"{card['embed_dim']}, sha256 {card['weights_sha256'][:12]}")
