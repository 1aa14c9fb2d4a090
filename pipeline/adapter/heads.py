"""The adapter: one linear layer on frozen CLIP image features, trained with cross-entropy.

A whole grid of adapters (image ratio x text source x seed) trains as one job: their weights are
stacked into one (H, C, D) tensor and every step updates all heads at once, each on a batch drawn
from its own training pool (dinov2's "grid of linear heads in one pass"). The heads' losses are
summed; AdamW is elementwise, so each head follows exactly the path it would follow alone.

Early stopping keeps that property: each head is scored on its own held-out rows, keeps the
weights of its own best score and stops being tracked when its own patience runs out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from pipeline.clip.fingerprint import check_same_clip
from pipeline.common import InputError, atomic_path, write_json

WEIGHTS_FILE = "heads.safetensors"
INFO_FILE = "heads.json"


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Score every head on its validation rows every `eval_every` steps (and after the last
    step); each head keeps the weights of its best top-1 (ties: the earliest) and is frozen once
    `patience` evaluations in a row brought no improvement. Training ends when all are frozen."""

    val_rows: Sequence[np.ndarray]  # val_rows[h]: rows of the feature table head h is scored on
    eval_every: int
    patience: int


@dataclasses.dataclass
class TrainedHeads:
    weight: torch.Tensor  # (H, C, D)
    bias: torch.Tensor  # (H, C)
    best_step: np.ndarray  # (H,) updates behind these weights: `steps` without early stopping
    stop_step: np.ndarray  # (H,) the step whose evaluation froze the head (or the last step)
    val_top1: np.ndarray  # (H,) validation top-1 % at best_step; NaN without early stopping
    steps_run: int  # steps the batched job ran: fewer than `steps` when every head froze early


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
                       early_stopping: EarlyStopping | None = None,
                       show_progress: bool = True) -> TrainedHeads:
    """Train one linear head per pool, all at once.

    features: (N, D) the shared training table (images and mapped texts); labels: (N,) class
    indices in [0, C); pools[h]: rows of the table head h trains on; seeds[h]: its batch order.
    """
    device = features.device
    labels = labels.long()
    num_heads, width = len(pools), features.shape[1]
    weight = torch.zeros(num_heads, num_classes, width, device=device, requires_grad=True)
    bias = torch.zeros(num_heads, num_classes, device=device, requires_grad=True)
    optimizer = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay)
    streams = torch.as_tensor(batch_streams(pools, steps, batch_size, seeds), device=device)
    tracker = None if early_stopping is None else _BestHeads(
        features, labels, early_stopping, num_heads, logit_scale)
    step = 0
    for step in tqdm(range(1, steps + 1), desc=f"train {num_heads} adapters", unit="step",
                     disable=not show_progress):
        index = streams[step - 1].view(-1)  # (H*B,)
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
        if tracker is not None and (step % early_stopping.eval_every == 0 or step == steps):
            if not tracker.update(step, weight, bias):
                break
    if tracker is None:
        done = np.full(num_heads, step)
        return TrainedHeads(weight.detach(), bias.detach(), done, done,
                            np.full(num_heads, np.nan), step)
    return TrainedHeads(tracker.weight, tracker.bias, tracker.best_step, tracker.stop_step,
                        tracker.val_top1, step)


class _BestHeads:
    """Each head's best weights so far, by top-1 on its own validation rows."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, early: EarlyStopping,
                 num_heads: int, logit_scale: float):
        if len(early.val_rows) != num_heads:
            raise ValueError(f"{len(early.val_rows)} validation sets for {num_heads} heads")
        # heads sharing one validation set (the runs of one seed) are scored together
        groups: dict[bytes, tuple[np.ndarray, list[int]]] = {}
        for h, rows in enumerate(early.val_rows):
            rows = np.asarray(rows, dtype=np.int64)
            if len(rows) == 0:
                raise ValueError(f"head {h} has no validation rows")
            groups.setdefault(rows.tobytes(), (rows, []))[1].append(h)
        device = features.device
        self.groups = []
        for rows, heads in groups.values():
            rows = torch.as_tensor(rows, device=device)
            self.groups.append((np.array(heads), torch.as_tensor(heads, device=device),
                                features[rows], labels[rows]))
        self.sizes = np.array([len(rows) for rows in early.val_rows])
        self.patience, self.logit_scale = early.patience, logit_scale
        self.weight = self.bias = None
        self.best_hits = np.full(num_heads, -1)
        self.best_step = np.zeros(num_heads, dtype=np.int64)
        self.stop_step = np.zeros(num_heads, dtype=np.int64)
        self.misses = np.zeros(num_heads, dtype=np.int64)
        self.active = np.ones(num_heads, dtype=bool)

    @property
    def val_top1(self) -> np.ndarray:
        return 100.0 * self.best_hits / self.sizes

    @torch.no_grad()
    def update(self, step: int, weight: torch.Tensor, bias: torch.Tensor) -> bool:
        """Score the heads after `step` updates; False once every head is frozen."""
        hits = np.zeros(len(self.active), dtype=np.int64)
        for heads, on_device, val_features, val_labels in self.groups:
            logits = head_logits(weight[on_device], bias[on_device], val_features,
                                 self.logit_scale)  # (G, V, C)
            hits[heads] = (logits.argmax(dim=-1) == val_labels).sum(dim=-1).cpu().numpy()
        # hit counts, not percentages: ties are exact, and the earliest best is kept
        better = self.active & (hits > self.best_hits)
        if self.weight is None:
            self.weight, self.bias = weight.detach().clone(), bias.detach().clone()
        else:
            keep = torch.as_tensor(better, device=weight.device)
            self.weight = torch.where(keep[:, None, None], weight.detach(), self.weight)
            self.bias = torch.where(keep[:, None], bias.detach(), self.bias)
        self.best_hits[better] = hits[better]
        self.best_step[better] = step
        self.misses[better] = 0
        self.misses[self.active & ~better] += 1
        self.stop_step[self.active] = step
        self.active &= self.misses < self.patience
        return bool(self.active.any())


def head_logits(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor,
                logit_scale: float) -> torch.Tensor:
    """Logits of every head. features: (H, B, D) per-head batches, or (B, D) shared by all heads.
    Returns (H, B, C)."""
    if features.dim() == 2:
        return logit_scale * torch.einsum("bd,hcd->hbc", features, weight) + bias[:, None, :]
    return logit_scale * torch.einsum("hbd,hcd->hbc", features, weight) + bias[:, None, :]


@dataclasses.dataclass
class SavedHeads:
    weight: torch.Tensor  # (H, C, D)
    bias: torch.Tensor  # (H, C)
    info: dict  # run names in head order, class ids, feature and training settings, CLIP

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(H, N, C) logits of every head for (N, D) raw features, normalised as in training."""
        inputs = F.normalize(features, dim=-1) if self.info["normalize"] else features
        return head_logits(self.weight, self.bias, inputs, self.info["logit_scale"])


def save_heads(folder: Path, weight: torch.Tensor, bias: torch.Tensor, info: dict) -> None:
    """The grid's weights (safetensors) and what they mean (JSON, with the CLIP fingerprint)."""
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file({"weight": weight.cpu().contiguous(), "bias": bias.cpu().contiguous()}, str(tmp))
    write_json(folder / INFO_FILE, info)


def load_heads(folder: Path, clip_fingerprint: dict | None = None) -> SavedHeads:
    """The saved grid; with `clip_fingerprint`, refuses heads trained on another CLIP."""
    folder = Path(folder)
    if not (folder / INFO_FILE).is_file():
        raise InputError(f"no adapters at {folder} (no {INFO_FILE}): the `train_adapter` stage "
                         "makes them")
    info = json.loads((folder / INFO_FILE).read_text())
    check_same_clip(clip_fingerprint, info.get("clip_fingerprint"), f"the adapters in {folder}",
                    "train them again on this CLIP's features (the `train_adapter` stage)")
    tensors = load_file(str(folder / WEIGHTS_FILE))
    return SavedHeads(tensors["weight"], tensors["bias"], info)
