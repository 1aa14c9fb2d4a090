"""Many multinomial logistic regressions at once, to convergence: the solver of the few-shot
methods that are linear probes (`probe`, `ensemble`, `text_prior`).

Head h minimises, over W_h (C, D) and b_h (C,),

    sum_i w_hi * CE(W_h x_i + b_h, y_i)  +  strength_h * ||W_h - P_h||^2

with per-sample weights w_h (each head's rows sum to 1: a mean over its own training rows, the
others weighted 0), an L2 pull toward a prior P_h (zeros: CLIP's plain L2 probe; text
prototypes: the probe pulled to text), the bias unpenalised. The heads' objectives are
independent and strictly convex (strength > 0), so minimising their sum with one full-batch
L-BFGS reaches each head's own optimum: the folds of a cross-validation candidate are one job.
(Heads of very different strengths are not: their curvatures differ, and one L-BFGS memory
for all of them converges several times slower than one job per strength, each warm-started
from the stronger one's solution.) The gradient is written by hand: two matmuls an evaluation,
no graph. Where heads weigh some rows 0 (a cross-validation fold's held-out rows), each head's
logits are computed on its own rows alone, padded with 0-weighted rows to the largest head's
count: the same objective and gradient (a 0-weighted row adds exactly 0), summed in another
order, in two thirds of the work at 3 folds.

Converged means the largest gradient entry is below `TOLERANCE`, scikit-learn's default `tol`
for L-BFGS, which CLIP's probe used (scikit-learn >= 1.1 also minimises the mean loss, so the
thresholds mean the same).
"""

from __future__ import annotations

import torch

TOLERANCE = 1e-4


def fit_logistic_heads(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor,
                       num_classes: int, strengths: torch.Tensor,
                       prior: torch.Tensor | None = None, *, start=None, max_iter: int = 1000,
                       tolerance: float = TOLERANCE) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, D) features; y: (N,) classes in [0, C); weights: (H, N) sample weights, >= 0;
    strengths: (H,) L2 strengths > 0; prior: (H, C, D) or None (zeros). The weights start at
    `start` (W, b), else at the prior and b = 0: the optimum does not depend on it, the
    iterations do (a neighbouring strength's solution is a warm start). Returns W (H, C, D) and
    b (H, C)."""
    num_heads, width = len(weights), x.shape[1]
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    labels = y.long()
    rows = own_rows(weights)
    if rows is not None:  # each head on its own rows: (H, M, D), (H, M), (H, M)
        x, labels, weights = x[rows], labels[rows], weights.gather(1, rows)
    else:
        labels = labels.expand(num_heads, -1)  # (H, N)
    true = labels[:, :, None]  # each row's class, where the one-hot target is 1
    minus_one = torch.full(true.shape, -1.0, dtype=x.dtype, device=x.device)
    pull = torch.zeros(num_heads, num_classes, width, dtype=x.dtype, device=x.device) \
        if prior is None else prior.to(x.dtype)
    strength = strengths.to(x.dtype).view(-1, 1, 1)
    if start is None:
        start = pull, torch.zeros(num_heads, num_classes, dtype=x.dtype, device=x.device)
    weight = start[0].to(x.dtype).clone().requires_grad_(True)
    bias = start[1].to(x.dtype).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=10,
                                  tolerance_grad=tolerance, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        with torch.no_grad():
            if rows is None:  # every head on every row
                logits = torch.einsum("nd,hcd->hnc", x, weight) + bias[:, None, :]  # (H, N, C)
            else:
                logits = torch.baddbmm(bias[:, None, :], x, weight.mT)  # (H, M, C)
            log_norm = logits.logsumexp(dim=2, keepdim=True)
            away = weight - pull
            # the cross-entropy log_norm - logit of the true class, and softmax - one-hot: the
            # one-hot target read where it is 1 (a gather, a scatter) instead of a full pass
            # with it (the same numbers: the other classes' terms were exactly 0)
            loss = ((log_norm - logits.gather(2, true)).squeeze(2) * weights).sum() \
                + (strength * away.square()).sum()
            residual = (logits - log_norm).exp_().scatter_add_(2, true, minus_one) \
                .mul_(weights[:, :, None])
            weight.grad = (torch.einsum("hnc,nd->hcd", residual, x) if rows is None
                           else residual.mT @ x) + 2 * strength * away
            bias.grad = residual.sum(dim=1)
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def own_rows(weights: torch.Tensor) -> torch.Tensor | None:
    """(H, M) the rows each head weighs above 0 (weights (H, N)), in order, a head with fewer
    than the largest count M padded with rows it weighs 0; None where that saves nothing (some
    head weighs every row)."""
    kept = weights > 0
    count = kept.sum(dim=1)
    width = int(count.max())
    if width == weights.shape[1]:
        return None
    # a stable sort puts each head's own rows first, in order; the padding is rows it weighs 0
    order = torch.sort((~kept).to(torch.uint8), dim=1, stable=True).indices
    return order[:, :width]
