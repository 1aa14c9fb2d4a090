"""`lp_pp`: LP++, the linear probe blended class-wise with the text classifier (Huang et al.,
"LP++: A Surprisingly Strong Linear Probe for Few-Shot CLIP", CVPR 2024; reference code
FereshteShakeri/FewShot-CLIP-Strong-Baseline, methods/linear_probe_p2.py), on each budget.

Rule: on unit image features x (the kept images X, n of them, classes y),

    logits = x . W^T + b + alpha * (x . T^T)       (alpha (C,): one blend weight per class)

with T the unit zero-shot class vectors. Everything is set from the support set, no search:
W starts at each class's *sum* of its kept features (the reference's `compute_centroids`), b at
0; alpha at 250 x the mean over classes of the mean text score x . t_c of class c's images
(`calculate_init_alpha`: its `* shots` and `/ shots` cancel). Full-batch gradient steps on the
mean cross-entropy: W and b by SGD with momentum 0.9 at step 4n / lambda_max(X^T X)
(`calculate_lr_w`: the inverse of a bound on the loss's curvature, the majorize-minimize step),
and every 10th step one gradient step on alpha at n / (4 max_c sum_i (x_i . t_c)^2)
(`calculate_lr_alpha`). Since every part is linear, the result is saved as one linear
classifier, W + diag(alpha) T.

Where we differ: the reference keeps the epoch of its 300 whose accuracy is best on a few-shot
*validation* split, and reports the test accuracy of that epoch; here the step count is chosen
among `eval_every`, 2 x `eval_every`, ... `steps` by top-1 under cross-validation over the kept
images (ties: the fewest steps), the whole path refitted on all of them (`steps` where a class
has one image). The reference's alpha step uses alpha's gradient summed over every step so far
(`alpha_vec.grad` is never zeroed); here it is the current step's gradient, the paper's
block-coordinate update. b starts at 0, not at `nn.Linear`'s random draw. T is the description
set's CBD classifier, not a template ensemble.
"""

from __future__ import annotations

import pandas as pd
from pydantic import Field, model_validator

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.config import Section

INIT_SCALE = 250.0  # the reference's alpha initialisation factor
MOMENTUM = 0.9  # the reference's SGD momentum on W and b


class LinearProbePlusPlus(Section):
    """LP++: a probe blended class-wise with the zero-shot classifier, steps set from the data."""

    steps: int = Field(300, ge=1, description="full-batch gradient steps at most (the "
                       "reference's 300 epochs); all of them where no image can be held out")
    alpha_every: int = Field(10, ge=1, description="steps on W and b between two steps on "
                             "the blend weights alpha (the reference's 10)")
    eval_every: int = Field(10, ge=1, description="the step counts tried under "
                            "cross-validation: every eval_every steps up to `steps` (as many as "
                            "steps: none, all steps run)")

    @model_validator(mode="after")
    def _some_candidate(self) -> LinearProbePlusPlus:
        if self.steps % self.eval_every:
            raise ValueError(f"steps ({self.steps}) is not a multiple of eval_every "
                             f"({self.eval_every}): the step counts tried must end at steps")
        if self.alpha_every > self.steps:
            raise ValueError(f"alpha_every ({self.alpha_every}) is more than steps "
                             f"({self.steps}): the blend weights would never move")
        return self


def step_sizes(x, mask, labels_hot, text_logits):
    """Each head's step sizes and starting point, from its own rows (mask (H, n) 0/1 of the
    kept images x (n, D) it trains on; labels_hot (n, C); text_logits x . T^T (n, C)):
    (lr_w (H,), lr_alpha (H,), W0 (H, C, D), alpha0 (H,))."""
    import torch

    count = mask.sum(dim=1)  # (H,)
    rows = mask[:, :, None] * x  # (H, n, D)
    # lambda_max(X^T X) from the (D, D) Gram matrix: a third of the time of X's largest
    # singular value at CUB's size, the same value to float32's precision
    lr_w = 4 * count / torch.linalg.eigvalsh(rows.mT @ rows)[:, -1]
    lr_alpha = count / (4 * torch.einsum("hn,nc->hc", mask, text_logits.square()).amax(dim=1))
    weight = torch.einsum("hn,nc,nd->hcd", mask, labels_hot, x)
    per_class = (torch.einsum("hn,nc,nc->hc", mask, labels_hot, text_logits)
                 / torch.einsum("hn,nc->hc", mask, labels_hot))
    return lr_w, lr_alpha, weight, INIT_SCALE * per_class.mean(dim=1)


def lp_pp_path(x, y, mask, zero_shot, steps: int, alpha_every: int, eval_every: int):
    """LP++ on H heads at once, head h on the kept images where mask[h] is 1 (x (n, D) unit,
    y (n,), zero_shot T (C, D) unit): after every `eval_every` steps, each head's classifier as
    (W + diag(alpha) T (H, C, D), b (H, C)). The heads are independent: each one's loss is the
    mean over its own rows and its step sizes come from them."""
    import torch
    import torch.nn.functional as F

    mask = mask.to(x.dtype)
    heads, classes, width = len(mask), len(zero_shot), x.shape[1]
    hot = F.one_hot(y.long(), classes).to(x.dtype)
    text = x @ zero_shot.T  # (n, C)
    lr_w, lr_alpha, weight, alpha0 = step_sizes(x, mask, hot, text)
    bias = torch.zeros(weight.shape[:2], dtype=x.dtype, device=x.device)
    alpha = alpha0[:, None].expand(-1, classes).clone()
    share = (mask / mask.sum(dim=1, keepdim=True)).T[:, :, None]  # (n, H, 1): each head's mean
    moment_w = moment_b = None
    path = []
    rows, labels = torch.arange(len(x), device=x.device), y.long()
    for step in range(1, steps + 1):
        # rows first, (n, H, C): both matmuls are plain 2-D ones over every head at once; the
        # bias and the text term added in place (each (n, H, C) pass costs a tenth of a matmul)
        logits = torch.addmm(bias.reshape(1, heads * classes), x,
                             weight.reshape(heads * classes, width).T).view(-1, heads, classes)
        logits.addcmul_(text[:, None, :], alpha)
        # d(mean CE)/d logits, head by head: (softmax - one-hot) / n_h on the head's rows
        residual = logits.softmax(dim=-1)
        residual[rows, :, labels] -= 1
        residual.mul_(share)
        grad_w = (residual.reshape(-1, heads * classes).T @ x).view(heads, classes, width)
        grad_b = residual.sum(dim=0)
        moment_w = grad_w if moment_w is None else MOMENTUM * moment_w + grad_w
        moment_b = grad_b if moment_b is None else MOMENTUM * moment_b + grad_b
        if step % alpha_every == 0:  # alpha's gradient at the same point as W's
            alpha = alpha - lr_alpha[:, None] * (residual * text[:, None, :]).sum(dim=0)
        weight = weight - lr_w[:, None, None] * moment_w
        bias = bias - lr_w[:, None] * moment_b
        if step % eval_every == 0:
            path.append((weight + alpha[:, :, None] * zero_shot, bias))
    return path


def held_out_correct(x, y, fold, zero_shot, settings: LinearProbePlusPlus):
    """(candidates, n) bool: whether each kept image (x (n, D) unit, classes y, folds `fold`)
    is classified right by its fold's head after each candidate step count (every `eval_every`
    steps), a fold's head being LP++'s path trained on the other folds' rows alone. The same
    heads as `lp_pp_path` masking the fold out of all n rows (a held-out row's residual is
    zero), in two thirds of the work at 3 folds: each path meets only its own rows."""
    import torch

    candidates = settings.steps // settings.eval_every
    correct = torch.zeros(candidates, len(x), dtype=torch.bool, device=x.device)
    for f in range(int(fold.max()) + 1):
        mine = (fold == f).nonzero().squeeze(1)
        other = (fold != f).nonzero().squeeze(1)
        x_other = x.index_select(0, other)
        path = lp_pp_path(x_other, y.index_select(0, other),
                          torch.ones(1, len(other), dtype=x.dtype, device=x.device),
                          zero_shot, settings.steps, settings.alpha_every, settings.eval_every)
        x_mine, y_mine = x.index_select(0, mine), y.index_select(0, mine)
        for k, (weight, bias) in enumerate(path):
            logits = torch.addmm(bias[0], x_mine, weight[0].T)  # (n_f, C)
            correct[k, mine] = logits.argmax(dim=1) == y_mine
    return correct


def train_lp_pp(inputs, protocol, settings: LinearProbePlusPlus):
    import numpy as np
    import torch

    from pipeline.adapter.few_shot import (LinearClassifiers, budget_images, first_best,
                                           kept_features, map_budgets, run_row,
                                           scored_features, text_prototypes)

    zero_shot = text_prototypes(inputs, "none")

    def one(part):
        x = kept_features(inputs, part)
        y = torch.as_tensor(part.labels, device=x.device)
        everything = torch.ones(1, len(x), device=x.device)
        if settings.eval_every == settings.steps:
            chosen, accuracy = settings.steps, None  # one candidate
        elif part.val_rows is not None:  # CoOp's val images: one path on every kept image
            x_val = scored_features(inputs, part)
            y_val = torch.as_tensor(part.val_labels, device=x.device)
            accuracy = np.array([
                100.0 * ((x_val @ weight[0].T + bias[0]).argmax(dim=1) == y_val)
                .float().mean().item()
                for weight, bias in lp_pp_path(x, y, everything, zero_shot, settings.steps,
                                               settings.alpha_every, settings.eval_every)])
            chosen = settings.eval_every * (first_best(accuracy) + 1)
        elif part.fold is None:
            chosen, accuracy = settings.steps, None  # none to hold out
        else:
            correct = held_out_correct(x, y, torch.as_tensor(part.fold, device=x.device),
                                       zero_shot, settings)
            accuracy = np.array([100.0 * hit.float().mean().item() for hit in correct])
            chosen = settings.eval_every * (first_best(accuracy) + 1)
        # the chosen count as the last point of a path on every kept image
        weight, bias = lp_pp_path(x, y, everything, zero_shot, chosen, settings.alpha_every,
                                  chosen)[-1]
        one_candidate = settings.eval_every == settings.steps  # nothing to choose
        return weight[0], bias[0], {**run_row("lp_pp", part, "descriptions", "none",
                                              {} if one_candidate else {"steps": chosen},
                                              accuracy), "steps": chosen}

    weights, biases, rows = zip(*map_budgets(one, budget_images(inputs, protocol), protocol,
                                             inputs.features.device))
    return LinearClassifiers(torch.stack(weights), torch.stack(biases), pd.DataFrame(list(rows)),
                             inputs.class_ids.tolist(), inputs.fingerprint, "LP++ probes")


def load_lp_pp(folder, fingerprint):
    from pipeline.adapter.few_shot import load_linear_classifiers

    return load_linear_classifiers(folder, fingerprint)


ADAPTER_METHODS.register("lp_pp", settings=LinearProbePlusPlus,
                         doc=LinearProbePlusPlus.__doc__)(
    AdapterMethod(train=train_lp_pp, load=load_lp_pp, uses_prior=True))
