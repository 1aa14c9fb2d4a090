"""The adapter: one linear layer on frozen CLIP image features, trained with cross-entropy.

A whole grid of adapters (image ratio x text source x seed) trains as one job: their weights are
stacked into one (H, C, D) tensor and every step updates all heads at once, each on a batch drawn
from its own training pool (dinov2's "grid of linear heads in one pass"). The heads' losses are
summed; AdamW is elementwise, so each head follows exactly the path it would follow alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


def batch_streams(pools: Sequence[np.ndarray], steps: int, batch_size: int,
                  seeds: Sequence) -> np.ndarray:
    """Row indices each head trains on, step by step: (steps, H, batch_size) int32, step-major so
    that one step's indices are one contiguous block (int32: half the memory of a long grid).

    Head h walks through permutations of its pool drawn from `seeds[h]`, epoch after epoch; its
    stream depends on nothing else, so the same head trained alone sees the same batches.
    """
    streams = np.empty((steps, len(pools), batch_size), dtype=np.int32)
    for h, (pool, seed) in enumerate(zip(pools, seeds, strict=True)):
        if len(pool) == 0:
            raise ValueError(f"head {h} has an empty training pool")
        rng = np.random.default_rng(seed)
        need, parts = steps * batch_size, []
        while need > 0:
            parts.append(pool[rng.permutation(len(pool))][:need])
            need -= len(parts[-1])
        streams[:, h] = np.concatenate(parts).reshape(steps, batch_size)
    return streams


def train_linear_heads(features: torch.Tensor, labels: torch.Tensor, pools: Sequence[np.ndarray],
                       num_classes: int, *, steps: int, batch_size: int, lr: float,
                       weight_decay: float, logit_scale: float, seeds: Sequence,
                       show_progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Train one linear head per pool, all at once.

    features: (N, D) the shared training table (images and mapped texts); labels: (N,) class
    indices in [0, C); pools[h]: rows of the table head h trains on; seeds[h]: its batch order.
    Returns weights (H, C, D) and biases (H, C).
    """
    device = features.device
    labels = labels.long()
    num_heads, width = len(pools), features.shape[1]
    weight = torch.zeros(num_heads, num_classes, width, device=device, requires_grad=True)
    bias = torch.zeros(num_heads, num_classes, device=device, requires_grad=True)
    optimizer = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay)
    streams = torch.as_tensor(batch_streams(pools, steps, batch_size, seeds), device=device)
    for step in tqdm(range(steps), desc=f"train {num_heads} adapters", unit="step",
                     disable=not show_progress):
        index = streams[step].view(-1)  # (H*B,)
        # index_select, not features[index]: a plain row copy, several times faster on CPU
        batch = features.index_select(0, index).view(num_heads, batch_size, width)  # (H, B, D)
        target = labels.index_select(0, index).view(num_heads, batch_size)  # (H, B)
        # logits laid out (H, C, B): with few classes the softmax vectorises far better along the
        # contiguous batch axis than along C
        logits = torch.baddbmm(bias[:, :, None], weight, batch.transpose(1, 2),
                               alpha=logit_scale)  # (H, C, B)
        # sum over heads of each head's mean loss: every head gets its own gradient, unscaled
        loss = F.cross_entropy(logits, target, reduction="sum") / batch_size
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return weight.detach(), bias.detach()


def head_logits(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor,
                logit_scale: float) -> torch.Tensor:
    """Logits of every head. features: (H, B, D) per-head batches, or (B, D) shared by all heads.
    Returns (H, B, C)."""
    if features.dim() == 2:
        return logit_scale * torch.einsum("bd,hcd->hbc", features, weight) + bias[:, None, :]
    return logit_scale * torch.einsum("hbd,hcd->hbc", features, weight) + bias[:, None, :]
