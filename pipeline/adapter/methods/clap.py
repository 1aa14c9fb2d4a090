"""`zs_lp` and `clap`: the zero-shot-initialised linear probe and CLass-Adaptive linear Probing
(Silva-Rodriguez et al., "A Closer Look at the Few-Shot Adaptation of Large Vision-Language
Models", CVPR 2024; reference code jusiro/CLAP, trainers/adapters.py), on each budget. Neither
has a hyper-parameter to validate: the paper's point is adapting on the support set alone.

Rule (ZS-LP): class prototypes W (C, D) start at the zero-shot class vectors T (unit), and
logits = 100 * x . normalise(W)^T (x unit, 100 CLIP's logit scale, no bias); W minimises the
mean cross-entropy over the kept images.
Rule (CLAP): ZS-LP's loss + (1/C) sum_c lambda_c * ||w_c - t_c||^2, with lambda_c set once from
the support set: the mean zero-shot softmax probability of class c over the kept images of
class c (`init_lagrangian_multipliers` in the reference).

Where we differ: T is the description set's CBD classifier, not a template ensemble; the
support features are un-augmented (the reference draws 20 augmented epochs); W is optimised to
convergence by full-batch L-BFGS (at most `max_iter` iterations) instead of 300 epochs of SGD;
CLAP's multipliers stay at their support-set value (the reference's default: its augmented-
Lagrangian outer steps are off in the paper's main results).
"""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.config import Section


class ZeroShotProbe(Section):
    """ZS-LP: a linear probe of unit prototypes, started at the zero-shot classifier."""

    max_iter: int = Field(300, ge=1, description="L-BFGS iterations at most")


class ClassAdaptiveProbe(Section):
    """CLAP: ZS-LP with a class-wise pull to the zero-shot classifier, set from the support."""

    max_iter: int = Field(300, ge=1, description="L-BFGS iterations at most")


def clap_multipliers(zero_shot_logits, labels, num_classes: int):
    """(C,) lambda_c: the mean zero-shot softmax probability of class c over the images of
    class c (zero_shot_logits: (n, C); labels: (n,), every class present)."""
    import torch

    probability = zero_shot_logits.softmax(dim=1)
    hot = torch.nn.functional.one_hot(labels.long(), num_classes).to(probability.dtype)
    return (probability * hot).sum(dim=0) / hot.sum(dim=0)


def fit_prototypes(x, y, zero_shot, multipliers, max_iter: int):
    """W minimising mean CE(100 * x . normalise(W)^T) + mean_c(multipliers_c ||w_c - t_c||^2)
    from W = zero_shot (multipliers None: ZS-LP, no penalty)."""
    import torch
    import torch.nn.functional as F

    from pipeline.adapter.few_shot import CLIP_LOGIT_SCALE
    from pipeline.adapter.logistic import TOLERANCE

    weight = zero_shot.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight], lr=1, max_iter=max_iter, history_size=10,
                                  tolerance_grad=TOLERANCE, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(CLIP_LOGIT_SCALE * x @ F.normalize(weight, dim=-1).T, y)
        if multipliers is not None:
            loss = loss + (multipliers * (weight - zero_shot).square().sum(dim=1)).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach()


def _trainer(name: str, constrained: bool):
    def train(inputs, protocol, settings):
        import torch
        import torch.nn.functional as F

        from pipeline.adapter.few_shot import (CLIP_LOGIT_SCALE, LinearClassifiers, budget_images,
                                               kept_features, map_budgets, run_row,
                                               text_prototypes)

        zero_shot = text_prototypes(inputs, "none")
        classes = len(inputs.class_ids)

        def one(part):
            x = kept_features(inputs, part)
            y = torch.as_tensor(part.labels, device=x.device)
            multipliers = (clap_multipliers(CLIP_LOGIT_SCALE * x @ zero_shot.T, y, classes)
                           if constrained else None)
            weight = fit_prototypes(x, y, zero_shot, multipliers, settings.max_iter)
            return (CLIP_LOGIT_SCALE * F.normalize(weight, dim=-1),  # logits x . W^T
                    run_row(name, part, "descriptions", "none", {}, None))

        weights, rows = zip(*map_budgets(one, budget_images(inputs, protocol), protocol,
                                         inputs.features.device))
        weight = torch.stack(weights)
        return LinearClassifiers(weight, torch.zeros(weight.shape[:2], device=weight.device),
                                 pd.DataFrame(list(rows)), inputs.class_ids.tolist(),
                                 inputs.fingerprint,
                                 "CLAP probes" if constrained else "zero-shot-initialised probes")
    return train


def _load(folder, fingerprint):
    from pipeline.adapter.few_shot import load_linear_classifiers

    return load_linear_classifiers(folder, fingerprint)


ADAPTER_METHODS.register("zs_lp", settings=ZeroShotProbe, doc=ZeroShotProbe.__doc__)(
    AdapterMethod(train=_trainer("zs_lp", constrained=False), load=_load, uses_prior=True))
ADAPTER_METHODS.register("clap", settings=ClassAdaptiveProbe, doc=ClassAdaptiveProbe.__doc__)(
    AdapterMethod(train=_trainer("clap", constrained=True), load=_load, uses_prior=True))
