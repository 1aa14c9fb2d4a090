"""`tip_f`: Tip-Adapter-F, Tip-Adapter with its cache keys fine-tuned (Zhang et al., ECCV 2022,
section 3.3; reference code gaopengcuhk/Tip-Adapter, main.py `run_tip_adapter_F`), on each
budget.

Rule: Tip-Adapter's logits (`pipeline.adapter.methods.tip`) with the keys K a trainable (K, D)
matrix initialised at the kept image features,

    logits = 100 * x . T^T + alpha * exp(-beta * (1 - x . K^T)) . L,

K trained on the kept images by the mean cross-entropy at alpha, beta = `fixed_alpha`,
`fixed_beta` (the reference's init_alpha, init_beta): AdamW (lr `lr`, eps 1e-4, torch's weight
decay 0.01), a cosine schedule over every step, `epochs` passes over shuffled batches of
`batch_size` (the reference's 20 epochs at lr 0.001, batches of 256). Then alpha and beta are
searched over `alphas` x `betas` with the fine-tuned keys (ties: the first listed alpha, then
beta).

Where we differ: the reference keeps the epoch whose *test* accuracy is best and searches alpha
and beta on the validation split (its issue #11); here every epoch is run and the search is
cross-validation over the kept images: each fold's images scored by keys fine-tuned, as the
reference would, on the other folds' images alone (each class's cache term scaled to its full
cache's size, as `tip` does), the final keys fine-tuned on all of them. One un-augmented feature
per image (the reference averages 10 augmented views for the
keys and draws augmented batches). The alpha and beta grids are `alphas` x `betas` (the
reference searches 200 x 20 points of [0.1, search_scale]). T is the description set's CBD
classifier.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from pydantic import Field

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.adapter.methods.tip import TipAdapter
from pipeline.config import Distinct

ADAMW_EPS = 1e-4  # the reference's


class TipAdapterF(TipAdapter):
    """Tip-Adapter-F: Tip-Adapter's cache keys fine-tuned on each budget's kept images."""

    alphas: Distinct[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 5.0, 10.0], min_length=1,
        description="cache weights tried after fine-tuning, the first preferred on ties")
    fixed_alpha: float = Field(1.0, ge=0, description="alpha while the keys train, and where "
                               "no image can be held out")
    fixed_beta: float = Field(1.0, gt=0, description="beta while the keys train, and where no "
                              "image can be held out")
    epochs: int = Field(20, ge=1, description="passes over the kept images (the reference's 20)")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.001, gt=0, description="AdamW's learning rate, cosine-annealed to 0")


def class_slots(labels, classes: int):
    """The cache's keys laid out class by class for `fine_tune_keys`: (slot_key (C*m,), the
    key in each slot, len(labels) for an empty one; key_slot (n,), the slot of each key), m
    the largest class's count. A class's cache term is then the sum of its row of m slots."""
    import torch

    n = len(labels)
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=classes)
    width = int(counts.max())
    starts = torch.cumsum(counts, dim=0) - counts
    sorted_labels = labels[order]
    slot = sorted_labels * width + torch.arange(n, device=labels.device) - starts[sorted_labels]
    key_slot = torch.empty_like(slot).scatter_(0, order, slot)
    slot_key = torch.full((classes * width,), n, dtype=slot.dtype, device=labels.device)
    slot_key.scatter_(0, slot, order)
    return slot_key, key_slot


def fine_tune_keys(x, y, zero_shot, settings: TipAdapterF, seed: int):
    """(n, D) cache keys fine-tuned on the images they are the keys of (x (n, D) unit, their
    classes y (n,)), as the reference fine-tunes them: its forward and autograd's chain rule,
    written out so that nothing (b, K) is copied more than once a step."""
    import torch
    import torch.nn.functional as F

    from pipeline.adapter.few_shot import CLIP_LOGIT_SCALE

    classes = len(zero_shot)
    labels = y.long()
    slot_key, key_slot = class_slots(labels, classes)
    width = len(slot_key) // classes
    # the cache term L^T-summed as a (b, C, m) sum over class rows of slots, not a matmul
    # with the one-hot values (a fifth of a step's matmul time), where the empty slots
    # cost less than that matmul (classes of about the same size)
    slotted = len(slot_key) * 2 * x.shape[1] <= len(x) * (2 * x.shape[1] + classes)
    if slotted:
        filled = (slot_key < len(x)).to(x.dtype)  # (C*m,) 0 at an empty slot
        filled = None if bool(filled.all()) else filled  # classes of one size: none to mask
        keys = torch.cat([x, x.new_zeros(1, x.shape[1])]).index_select(0, slot_key)
    else:
        keys, key_labels = x.clone(), labels
        values = F.one_hot(labels, classes).to(x.dtype)  # (n, C) the cache's values L
    batches = -(-len(x) // settings.batch_size)
    # fused: one pass over the keys a step, not one per moment (the same update: a quarter of
    # the time fine-tuning took at CUB's size went to unfused AdamW steps); an empty slot's
    # key is 0 with gradient 0, and so stays 0
    optimizer = torch.optim.AdamW([keys], lr=settings.lr, eps=ADAMW_EPS,
                                  fused=keys.device.type in ("cpu", "cuda"))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    base = CLIP_LOGIT_SCALE * x @ zero_shot.T
    alpha, beta = settings.fixed_alpha, settings.fixed_beta
    shift = torch.tensor(-beta, dtype=x.dtype, device=x.device)
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for batch in order.split(settings.batch_size):
            x_batch = x[batch]
            # exp(-beta (1 - x . K^T)) = exp(beta x . K^T - beta): one pass after the matmul
            cache_weight = torch.addmm(shift, x_batch, keys.T, alpha=beta).exp_()  # (b, K)
            if slotted:
                if filled is not None:
                    cache_weight.mul_(filled)
                cache = cache_weight.view(len(batch), classes, width).sum(dim=2)
            else:
                cache = cache_weight @ values  # (b, C)
            cache.requires_grad_(True)
            loss = F.cross_entropy(base[batch] + alpha * cache, y[batch])
            grad, = torch.autograd.grad(loss, cache)  # (b, C) d loss / d cache
            # the rest of the chain by hand: d/dK = (beta exp(...) * (grad . L^T))^T x, and
            # grad . L^T (L one-hot) is each key's class column of grad: in the slots' layout a
            # broadcast over a class's row of slots, in place on the cache weights (an empty
            # slot's is 0, masked); else a gather
            if slotted:
                grad = cache_weight.view(len(batch), classes, width).mul_(
                    grad.mul_(beta)[:, :, None]).view(len(batch), -1)  # (b, K)
            else:
                grad = grad.index_select(1, key_labels).mul_(cache_weight).mul_(beta)
            # (K, D) in the keys' layout, as autograd computes it (fused AdamW reads a
            # transposed gradient's memory as if it were laid out as the keys: wrong keys)
            keys.grad = grad.T @ x_batch
            optimizer.step()
            schedule.step()
    return keys.index_select(0, key_slot) if slotted else keys


class HeldOutFold:
    """One fold's kept images (rows `mine` of x, y) under the cache of the other folds' images,
    its keys fine-tuned on those images alone; each class's cache term scaled by n_c / (its
    keys in that cache), the weight the full cache gives it at test (as `tip` does)."""

    def __init__(self, x, y, mine, zero_shot, settings: TipAdapterF, seed: int):
        import torch

        from pipeline.adapter.few_shot import CLIP_LOGIT_SCALE

        classes = len(zero_shot)
        keys = fine_tune_keys(x[~mine], y[~mine], zero_shot, settings, seed)
        self.labels = y[mine]
        self.affinity = x[mine] @ keys.T  # (n_f, K)
        self.values = torch.nn.functional.one_hot(y[~mine].long(), classes).to(x.dtype)
        self.scale = (torch.bincount(y, minlength=classes)
                      / torch.bincount(y[~mine], minlength=classes).clamp_min(1)).to(x.dtype)
        self.zero_shot = CLIP_LOGIT_SCALE * x[mine] @ zero_shot.T

    def cache(self, beta: float):
        """(n_f, C) the cache term at sharpness `beta`, before its weight alpha."""
        import torch

        return torch.exp(-beta * (1 - self.affinity)) @ self.values * self.scale


def train_tip_f(inputs, protocol, settings: TipAdapterF):
    import numpy as np
    import torch

    from pipeline.adapter.few_shot import (budget_images, first_best, kept_features,
                                           map_budgets, run_row, text_prototypes)
    from pipeline.adapter.methods.tip import TipCaches, val_grid

    zero_shot = text_prototypes(inputs, "none")
    grid = [(a, b) for a in settings.alphas for b in settings.betas]

    def one(part):
        x = kept_features(inputs, part)
        y = torch.as_tensor(part.labels, device=x.device)
        seed = part.budget.seed
        accuracy = None
        alpha, beta = settings.fixed_alpha, settings.fixed_beta
        tuned = None
        if part.val_rows is not None:  # CoOp's val images under the keys tuned on every kept one
            tuned = fine_tune_keys(x, y, zero_shot, settings, seed)
            accuracy = val_grid(inputs, part, tuned, y, zero_shot, grid)
            alpha, beta = grid[first_best(accuracy)]
        elif part.fold is not None:
            fold = torch.as_tensor(part.fold, device=x.device)
            held = [HeldOutFold(x, y, fold == f, zero_shot, settings, seed)
                    for f in range(int(part.fold.max()) + 1)]
            held_y = torch.cat([h.labels for h in held])
            zero_shot_logits = torch.cat([h.zero_shot for h in held])
            by_beta = {}  # beta -> {alpha: held-out top-1}
            for b in settings.betas:
                cache = torch.cat([h.cache(b) for h in held])
                by_beta[b] = {a: 100.0 * ((zero_shot_logits + a * cache).argmax(dim=1) == held_y)
                              .float().mean().item() for a in settings.alphas}
            accuracy = np.array([by_beta[b][a] for a, b in grid])
            alpha, beta = grid[first_best(accuracy)]
        if tuned is None:
            tuned = fine_tune_keys(x, y, zero_shot, settings, seed)
        return tuned, y, run_row("tip_f", part, "descriptions", "none",
                                 {"alpha": alpha, "beta": beta}, accuracy)

    keys, labels, rows = zip(*map_budgets(one, budget_images(inputs, protocol), protocol,
                                          inputs.features.device))
    starts = np.cumsum([0] + [len(y) for y in labels]).tolist()
    return TipCaches(zero_shot, torch.cat(keys), torch.cat(labels).to(torch.int64), starts,
                     pd.DataFrame(list(rows)), inputs.class_ids.tolist(), inputs.fingerprint,
                     "Tip-Adapter-F caches")


def load_tip_f(folder, fingerprint):
    from pipeline.adapter.methods.tip import load_tip

    return load_tip(folder, fingerprint, "Tip-Adapter-F caches")


ADAPTER_METHODS.register("tip_f", settings=TipAdapterF, doc=TipAdapterF.__doc__)(
    AdapterMethod(train=train_tip_f, load=load_tip_f, uses_prior=True))
