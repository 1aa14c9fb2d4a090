"""CLIP's linear-probe protocol on frozen image features: L2-regularised multinomial logistic
regression, its strength chosen on a held-out slice of the training images.

As in CLIP, nothing is standardised; the features are only scaled to unit length (the probe sees
directions, as zero-shot CLIP does). Each candidate strength is fitted on the training images
less a class-stratified validation slice and scored there; the best (ties: the stronger) is refit
on all the training images. Full-batch L-BFGS, warm-started from strong to weak regularisation
along the path, keeps a CUB-sized grid (6,000 x 768, 200 classes) to seconds on a CPU.

Given a validation set of its own (a CoOp split's val images), each strength is fitted on all
the training images and scored there, and the chosen fit is the probe: nothing is held out of
train and nothing is refit (CoOp's `lpclip` picks C on val, then trains on train alone).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.common import InputError
from pipeline.evaluate.splits import held_out_mask


@dataclasses.dataclass
class LinearProbe:
    """A fitted probe: logits = normalise(features) @ weight.T + bias."""

    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    strength: float  # the chosen L2 penalty lambda
    validation: pd.DataFrame  # (strength, val_top1) per candidate, strong to weak

    def logits(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, C) class logits of (N, D) features (normalised here, as in training)."""
        x = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=-1)
        return x.to(self.weight.device) @ self.weight.T + self.bias


def _fit(x: torch.Tensor, y: torch.Tensor, num_classes: int, strength: float, max_iter: int,
         start: torch.Tensor | None) -> torch.Tensor:
    """Minimise mean cross-entropy + strength * ||W||^2 over theta = [W | b] (C, D + 1), from
    `start` (or zeros); `x` (N, D + 1) ends in a column of ones, so the bias is theta's last column
    and goes unpenalised. The gradient is written by hand: two matmuls an evaluation, no graph."""
    n, width = x.shape
    theta = (torch.zeros(num_classes, width, device=x.device) if start is None
             else start.clone()).requires_grad_(True)
    penalised = torch.ones(width, device=x.device)
    penalised[-1] = 0.0  # the bias
    target = F.one_hot(y, num_classes).to(x.dtype)  # (N, C)
    optimizer = torch.optim.LBFGS([theta], lr=1, max_iter=max_iter, history_size=10,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        with torch.no_grad():
            logits = x @ theta.T  # (N, C)
            log_norm = logits.logsumexp(dim=1, keepdim=True)  # (N, 1)
            weight = theta * penalised
            loss = ((log_norm - logits) * target).sum() / n + strength * weight.square().sum()
            residual = (logits - log_norm).exp_().sub_(target).div_(n)  # d loss / d logits
            theta.grad = residual.T @ x + 2 * strength * weight
        return loss

    optimizer.step(closure)
    return theta.detach()


def fit_linear_probe(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                     num_classes: int, *, strengths: list[float], val_fraction: float, seed: int,
                     max_iter: int, device: str | torch.device,
                     val: tuple[np.ndarray, np.ndarray] | None = None) -> LinearProbe:
    """Pick the L2 strength (lambda) among `strengths` by top-1 on a held-out, class-stratified
    `val_fraction` of the training images (N, D), then refit on all of them with it.
    Deterministic given `seed` (the split; the weights start at zero). `val`: (features (M, D),
    labels (M,)) to pick it on instead; the fit on all training images is then the probe
    (val_fraction and seed unused)."""
    x = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=-1)
    y_np = np.asarray(labels, dtype=np.int64).reshape(-1)
    if x.ndim != 2 or len(x) != len(y_np) or not len(y_np):
        raise InputError(f"the linear probe needs (N, D) features and N labels, got features "
                         f"{tuple(x.shape)} and {len(y_np)} labels")
    if y_np.min() < 0 or y_np.max() >= num_classes:
        raise InputError(f"labels must lie in 0..{num_classes - 1}, found "
                         f"{y_np.min()}..{y_np.max()}")
    if not strengths or any(not s >= 0 for s in strengths):
        raise InputError(f"strengths must be a non-empty list of penalties >= 0, got {strengths}")
    if val is not None:
        return _probe_on(x, y_np, val, num_classes, strengths, max_iter, device)
    if not 0 < val_fraction < 1:
        raise InputError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    held = held_out_mask(y_np, val_fraction, seed)  # the slice every model selection uses
    if not held.any():
        raise InputError("no class has 2 training images, so none can be held out for validation")

    x = _with_bias(x).to(device)  # (N, D + 1): the bias column
    y = torch.as_tensor(y_np, device=device)
    held = torch.as_tensor(held, device=device)
    fits, validation, best = _strength_path(x[~held], y[~held], x[held], y[held], num_classes,
                                            strengths, max_iter)
    theta = _fit(x, y, num_classes, best, max_iter, fits[best]).cpu()
    return LinearProbe(weight=theta[:, :-1].contiguous(), bias=theta[:, -1].contiguous(),
                       strength=best, validation=validation)


def _strength_path(x_fit: torch.Tensor, y_fit: torch.Tensor, x_val: torch.Tensor,
                   y_val: torch.Tensor, num_classes: int, strengths: list[float],
                   max_iter: int) -> tuple[dict[float, torch.Tensor], pd.DataFrame, float]:
    """Each strength fitted on (x_fit, y_fit), strong to weak (each fit warm-starts the next),
    and scored on (x_val, y_val): the fits by strength, the validation table (strength,
    val_top1) and the best strength (ties: the stronger)."""
    start, fits, rows = None, {}, []
    for strength in sorted({float(s) for s in strengths}, reverse=True):
        start = fits[strength] = _fit(x_fit, y_fit, num_classes, strength, max_iter, start)
        top1 = 100.0 * ((x_val @ start.T).argmax(dim=1) == y_val).float().mean().item()
        rows.append((strength, top1))
    validation = pd.DataFrame(rows, columns=["strength", "val_top1"])
    best = float(validation["strength"][validation["val_top1"].idxmax()])  # first = strongest
    return fits, validation, best


def _with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1)], dim=1)


def _probe_on(x: torch.Tensor, y_np: np.ndarray, val: tuple[np.ndarray, np.ndarray],
              num_classes: int, strengths: list[float], max_iter: int,
              device: str | torch.device) -> LinearProbe:
    """Each strength fitted on all of (x, y), scored on `val`; the best fit (ties: the
    stronger) as it is."""
    x_val = F.normalize(torch.as_tensor(val[0], dtype=torch.float32), dim=-1)
    y_val = np.asarray(val[1], dtype=np.int64).reshape(-1)
    if x_val.ndim != 2 or len(x_val) != len(y_val) or not len(y_val):
        raise InputError(f"the linear probe's validation set needs (M, D) features and M labels,"
                         f" got features {tuple(x_val.shape)} and {len(y_val)} labels")
    x, x_val = _with_bias(x).to(device), _with_bias(x_val).to(device)
    y, y_val = torch.as_tensor(y_np, device=device), torch.as_tensor(y_val, device=device)
    fits, validation, best = _strength_path(x, y, x_val, y_val, num_classes, strengths, max_iter)
    theta = fits[best].cpu()
    return LinearProbe(weight=theta[:, :-1].contiguous(), bias=theta[:, -1].contiguous(),
                       strength=best, validation=validation)
