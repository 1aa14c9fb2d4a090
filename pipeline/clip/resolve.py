"""The `clip` stage's entry: one backbone of `clip.backbones` as a CLIP ready to pin. Pretrained
weights come from the backbone's library (its hub, or a local copy); a backbone without them
(`pretrained: null`, the demo's) is a random init trained here on COCO's pairs, seeded from
`clip.demo_train.seed` so that a rerun gives the same bytes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import torch

from pipeline.clip.loading import Clip, create_clip
from pipeline.clip.settings import Backbone, DemoClipTraining
from pipeline.clip.training import train_demo_clip
from pipeline.common import InputError


@dataclasses.dataclass(frozen=True)
class CocoPairs:
    """What the demo CLIP trains on: COCO's image index (image_id, path, split), its captions
    (image_id, text), and the folder the paths are under."""

    images: pd.DataFrame
    captions: pd.DataFrame
    root: Path


@dataclasses.dataclass
class ResolvedClip:
    clip: Clip
    extra: dict  # what the card records beyond the model: how it was trained, if it was


def resolve_clip(name: str, backbone: Backbone, demo_train: DemoClipTraining,
                 coco: CocoPairs | None) -> ResolvedClip:
    """Backbone `name`: its pretrained weights, or (`pretrained: null`, `coco` given) a model
    trained here."""
    torch.manual_seed(demo_train.seed)  # a random init (the demo's) is seeded too
    try:
        clip = create_clip(backbone.model, backbone.pretrained, backbone.library)
    except InputError as error:
        raise InputError(f"clip.backbones.{name}: {error}") from None
    if backbone.pretrained is not None:
        return ResolvedClip(clip, {})
    if backbone.library != "open_clip" or coco is None:
        raise InputError(f"clip.backbones.{name}: pretrained: null trains an open_clip model "
                         "here on COCO's pairs (library open_clip, and the data stage's COCO "
                         "index)")
    history = train_demo_clip(clip, coco.images, coco.captions, coco.root, demo_train)
    return ResolvedClip(clip, {"trained_on": "demo COCO-like train+restval pairs",
                               "training": demo_train.model_dump(), "loss_per_epoch": history})
