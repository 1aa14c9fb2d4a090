"""Contrastive training of a small CLIP on image/caption pairs: how the demo gets its 'frozen' CLIP.

Real runs use pretrained weights; the offline demo has none, so it trains a tiny open_clip model
on the demo's COCO-like pairs with open_clip's own `ClipLoss`, until its text and image features
are really aligned. Images are decoded and preprocessed once, then held in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from pipeline.clip.loading import Clip
from pipeline.clip.settings import DemoClipTraining
from pipeline.common import InputError

TRAIN_SPLITS = ("train", "restval")  # Karpathy's: what the demo CLIP trains on


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup to the base learning rate, then cosine decay to zero (the Q-Former's
    training uses it too)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_demo_clip(clip: Clip, images: pd.DataFrame, captions: pd.DataFrame, root: Path,
                    settings: DemoClipTraining) -> list[float]:
    """Train `clip` (an open_clip model) in place on the train + restval pairs of a COCO-style
    index (images: image_id, path relative to `root`, split; captions: image_id, text).
    Returns the mean loss of each epoch."""
    images = images[images["split"].isin(TRAIN_SPLITS)].reset_index(drop=True)
    captions = captions[captions["image_id"].isin(images["image_id"])]
    pixels = torch.stack([clip.preprocess(Image.open(Path(root) / p).convert("RGB"))
                          for p in tqdm(images["path"], desc="decode COCO-like images", unit="img")])
    row_of = {image_id: row for row, image_id in enumerate(images["image_id"])}
    return train_clip_contrastive(clip.model, pixels, clip.tokenizer(captions["text"].tolist()),
                                  [row_of[i] for i in captions["image_id"]],
                                  epochs=settings.epochs, batch_size=settings.batch_size,
                                  lr=settings.lr, weight_decay=settings.weight_decay,
                                  seed=settings.seed)


def train_clip_contrastive(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor,
                           caption_image: Sequence[int], *, epochs: int, batch_size: int,
                           lr: float, weight_decay: float, seed: int,
                           show_progress: bool = True) -> list[float]:
    """Train `model` in place on (image, caption) pairs. Returns the mean loss of each epoch.

    images: (N_img, 3, H, W) preprocessed; tokens: (N_cap, L); caption_image[k] is the row of
    `images` that caption k describes. Each epoch visits every image once, with one of its
    captions drawn at random (captions of one image never share a batch, so no false negatives).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    caption_image = torch.as_tensor(np.asarray(caption_image), dtype=torch.long)
    captions_of = [torch.nonzero(caption_image == i).flatten() for i in range(len(images))]
    if any(len(c) == 0 for c in captions_of):
        raise ValueError("every image needs at least one caption")
    counts = torch.tensor([len(c) for c in captions_of])
    offsets = torch.cumsum(counts, 0) - counts
    flat = torch.cat(captions_of)
    steps_per_epoch = len(images) // batch_size
    if steps_per_epoch == 0:
        raise InputError(f"clip.demo_train.batch_size: {batch_size} exceeds the {len(images)} "
                         "training images")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = cosine_schedule(optimizer, steps_per_epoch, epochs * steps_per_epoch)
    import open_clip  # here: the Q-Former imports this module for its schedule alone

    loss_fn = open_clip.ClipLoss()
    model.train()
    history = []
    bar = tqdm(total=epochs * steps_per_epoch, desc="train demo CLIP", unit="step",
               disable=not show_progress)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        pick = (torch.rand(len(images), generator=generator) * counts).long()
        caption_of_image = flat[offsets + pick]
        losses = []
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            image_features, text_features, logit_scale = model(images[index],
                                                               tokens[caption_of_image[index]])
            loss = loss_fn(image_features, text_features, logit_scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():  # CLIP's clamp: temperature no sharper than 1/100
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)  # the bar redraws at its own pace
        history.append(float(np.mean(losses)))
    bar.close()
    model.eval()
    return history
