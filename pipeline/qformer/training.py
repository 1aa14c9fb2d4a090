"""Training the Q-Former on cached (caption feature, image feature) pairs.

The whole feature table sits on the device; batches are index slices of it, so there is no
per-sample Python and no DataLoader. AdamW, linear warmup then cosine decay, gradient clipping,
bf16 autocast on a GPU; seeded.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.clip.training import cosine_schedule
from pipeline.common import cpu_cost_warning
from pipeline.features.store import read_feature_set
from pipeline.qformer.losses import qformer_loss
from pipeline.qformer.model import QFormerConfig, TextToImageQFormer, map_texts, save_qformer
from pipeline.qformer.settings import TrainQFormer
from pipeline.qformer.text_inputs import PooledTexts, TextView, TokenTexts

TRAIN_SPLITS, VAL_SPLIT = ("train", "restval"), "val"  # Karpathy's


@torch.inference_mode()
def validation_metrics(model: TextToImageQFormer, text: TextView, images: torch.Tensor,
                       caption_image: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """Held-out figures: mean cosine of each caption's pseudo feature with its own image, and
    text->image retrieval R@1/R@5 among the held-out images.

    text: N_cap held-out captions; images: (N_img, D_i), one row per distinct image;
    caption_image: (N_cap,) row of `images` each caption belongs to.
    """
    pred = torch.as_tensor(map_texts(model, text, batch_size), device=images.device)  # (N_cap, D_i)
    pred, gallery = F.normalize(pred, dim=-1), F.normalize(images.float(), dim=-1)
    sims = pred @ gallery.T  # (N_cap, N_img)
    own = sims.gather(1, caption_image[:, None])  # (N_cap, 1)
    rank = (sims > own).sum(dim=1)  # images scoring above the right one
    return {"mean_matched_cosine": own.mean().item(),
            "recall_at_1": 100.0 * (rank < 1).float().mean().item(),
            "recall_at_5": 100.0 * (rank < 5).float().mean().item()}


def seconds_per_step(model: TextToImageQFormer, text: TextView, batch_size: int,
                     repeats: int = 2) -> float:
    """One training step's forward and backward pass on this machine at the real batch size
    (`batch_size` texts, fewer only where there are fewer), after one warm-up step: the mean of
    `repeats` timed steps (the optimiser's update is not counted). What a stage needs to say how
    long training would take before it starts; timing a small batch and scaling it up
    overstated CPU runs 30-55 times (small batches are all overhead). Leaves no gradients
    behind."""
    index = torch.arange(max(1, min(batch_size, len(text))), device=text.device)
    model.train()
    model(*text.batch(index)).float().square().mean().backward()  # warm-up: allocations, caches
    start = time.perf_counter()
    for _ in range(repeats):
        model(*text.batch(index)).float().square().mean().backward()
    seconds = (time.perf_counter() - start) / repeats
    model.zero_grad(set_to_none=True)
    return seconds * batch_size / len(index)


def train_qformer(model: TextToImageQFormer, text: TextView, image: torch.Tensor, *,
                  val_text: TextView, val_images: torch.Tensor, val_caption_image: torch.Tensor,
                  settings: TrainQFormer, compile: bool, show_progress: bool = True,
                  on_epoch=None) -> list[dict]:
    """Train on pairs (text k, image[k]), text pooled features or token states (`text_inputs`);
    returns one dict of figures per epoch (epoch 0 is the untrained model). `on_epoch(figures)`
    is called after each, e.g. to log curves. `compile`: the training forward runs through
    `torch.compile` (fused kernels; the first steps pay the compilation); validation stays
    eager. `settings`: the loss, the schedule and the optimiser (train_qformer's section)."""
    device, epochs, batch_size = image.device, settings.epochs, settings.batch_size
    torch.manual_seed(settings.seed)
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    steps_per_epoch = max(1, len(text) // batch_size)
    total = epochs * steps_per_epoch
    # On a GPU, one fused kernel updates every parameter (the CPU keeps the reference loop's
    # numbers: the demo's curves and bytes do not move).
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay, fused=device.type == "cuda")
    schedule = cosine_schedule(optimizer, max(1, int(settings.warmup_fraction * total)), total)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    forward = torch.compile(model) if compile else model  # the same parameters either way
    history = [{"epoch": 0, "train_loss": float("nan"),
                **validation_metrics(model, val_text, val_images, val_caption_image)}]
    if on_epoch:
        on_epoch(history[-1])
    bar = tqdm(total=total, desc="train Q-Former", unit="step", disable=not show_progress)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(text), generator=generator).to(device)
        # Summed on the device, read once an epoch: no host sync per step (float64, as the
        # Python float the loop summed into before, so the logged loss is the same number).
        running = torch.zeros((), dtype=torch.float64, device=device)
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            with autocast:
                pred = forward(*text.batch(index))
            value = qformer_loss(settings.loss, pred.float(), image[index],
                                 margin=settings.margin, temperature=settings.temperature,
                                 weighting=settings.weighting)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            schedule.step()
            running += value.detach()
            bar.update()
        history.append({"epoch": epoch, "train_loss": running.item() / steps_per_epoch,
                        **validation_metrics(model, val_text, val_images, val_caption_image)})
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.4f}",
                        val_cos=f"{history[-1]['mean_matched_cosine']:.3f}")
        if on_epoch:
            on_epoch(history[-1])
    bar.close()
    model.eval()
    return history


@dataclasses.dataclass
class TrainedQFormer:
    model: TextToImageQFormer
    history: list[dict]  # one dict of held-out figures per epoch (0: untrained)
    info: dict  # what the checkpoint records beside its config (CLIP fingerprint, text input)

    def save(self, folder: Path) -> None:
        save_qformer(self.model, folder, self.info)

    def summary(self) -> str:
        first, last = self.history[0], self.history[-1]
        return (f"held-out matched cosine {first['mean_matched_cosine']:.3f} -> "
                f"{last['mean_matched_cosine']:.3f}, R@1 {first['recall_at_1']:.1f} -> "
                f"{last['recall_at_1']:.1f}, R@5 {first['recall_at_5']:.1f} -> "
                f"{last['recall_at_5']:.1f}")


def train_on_coco(features: Path, fingerprint: dict, settings: TrainQFormer, device: str,
                  say: Callable[[str], None], on_epoch=None) -> TrainedQFormer:
    """The `train_qformer` stage's entry: a Q-Former trained on one backbone's COCO feature
    sets (`features`/coco_images and coco_captions, made by that `fingerprint`'s CLIP), on
    Karpathy train + restval, with held-out figures each epoch on Karpathy val."""
    device = torch.device(device)
    tokens = settings.text_input == "tokens"
    images = read_feature_set(Path(features) / "coco_images", fingerprint)
    captions = read_feature_set(Path(features) / "coco_captions", fingerprint, tokens=tokens)
    row_of = pd.Series(np.arange(len(images.ids)), index=images.ids["image_id"])
    caption_row = row_of.loc[captions.ids["image_id"]].to_numpy()
    caption_split = images.ids["split"].to_numpy()[caption_row]

    def tensor(array):
        return torch.as_tensor(array, dtype=torch.float32, device=device)

    texts = (TokenTexts.from_ragged(captions.tokens, device) if tokens
             else PooledTexts(tensor(captions.embeddings)))
    train = np.isin(caption_split, TRAIN_SPLITS)
    val = caption_split == VAL_SPLIT
    val_image_rows, val_caption_image = np.unique(caption_row[val], return_inverse=True)
    torch.manual_seed(settings.seed)  # the initial weights too, not only the training order
    model = TextToImageQFormer(QFormerConfig.of(settings.model, text_width=texts.width,
                                                image_width=images.manifest["width"])).to(device)
    train_texts = texts.subset(np.flatnonzero(train))
    warning = cpu_cost_warning(
        device.type, settings.epochs * max(1, len(train_texts) // settings.batch_size),
        lambda: seconds_per_step(model, train_texts, settings.batch_size), "steps",
        "Run it on a GPU machine (train_qformer.device: cuda; docs/costs.md).")
    if warning:
        say(warning)
    history = train_qformer(
        model, train_texts, tensor(images.embeddings[caption_row[train]]),
        val_text=texts.subset(np.flatnonzero(val)),
        val_images=tensor(images.embeddings[val_image_rows]),
        val_caption_image=torch.as_tensor(val_caption_image, device=device), on_epoch=on_epoch,
        settings=settings, compile=settings.compiles_on(device.type))
    return TrainedQFormer(model, history, {
        "clip_fingerprint": fingerprint, "text_input": settings.text_input,
        "untrained": history[0], "final": history[-1]})
