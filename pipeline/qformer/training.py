"""Training the Q-Former on cached (caption feature, image feature) pairs.

The whole feature table sits on the device; batches are index slices of it, so there is no
per-sample Python and no DataLoader. AdamW, linear warmup then cosine decay, gradient clipping,
bf16 autocast on a GPU; seeded.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.clip.training import cosine_schedule
from pipeline.qformer.losses import qformer_loss
from pipeline.qformer.model import TextToImageQFormer, map_texts
from pipeline.qformer.text_inputs import TextView


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
                     probe: int = 32) -> float:
    """One training step's forward and backward pass on this machine, timed on the second of two
    batches of `probe` texts and scaled to `batch_size` (the optimiser's update is not counted):
    what a stage needs to say how long training would take before it starts. Leaves no
    gradients behind."""
    index = torch.arange(max(1, min(batch_size, len(text), probe)), device=text.device)
    model.train()
    for _ in range(2):
        start = time.perf_counter()
        model(*text.batch(index)).float().square().mean().backward()
        seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds * batch_size / len(index)


def train_qformer(model: TextToImageQFormer, text: TextView, image: torch.Tensor, *,
                  val_text: TextView, val_images: torch.Tensor, val_caption_image: torch.Tensor,
                  loss: str, margin: float, weighting: str, temperature: float, epochs: int,
                  batch_size: int,
                  lr: float, weight_decay: float, warmup_fraction: float, grad_clip: float,
                  seed: int, compile: bool = False, show_progress: bool = True,
                  on_epoch=None) -> list[dict]:
    """Train on pairs (text k, image[k]), text pooled features or token states (`text_inputs`);
    returns one dict of figures per epoch (epoch 0 is the untrained model). `on_epoch(figures)`
    is called after each, e.g. to log curves. `compile`: the training forward runs through
    `torch.compile` (fused kernels; the first steps pay the compilation); validation stays
    eager."""
    device = image.device
    torch.manual_seed(seed)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    steps_per_epoch = max(1, len(text) // batch_size)
    total = epochs * steps_per_epoch
    # On a GPU, one fused kernel updates every parameter (the CPU keeps the reference loop's
    # numbers: the demo's curves and bytes do not move).
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                                  fused=device.type == "cuda")
    schedule = cosine_schedule(optimizer, max(1, int(warmup_fraction * total)), total)
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
            value = qformer_loss(loss, pred.float(), image[index], margin=margin,
                                 temperature=temperature, weighting=weighting)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
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
