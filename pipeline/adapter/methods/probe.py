"""`probe`: CLIP's linear probe on each budget's kept images (Radford et al. 2021, section 3.2
and appendix A.3: L2-regularised logistic regression, L-BFGS, up to 1,000 iterations, the
strength searched on held-out data).

Rule: on unit-length image features x, W and b minimise the mean cross-entropy over the kept
images + strength * ||W||^2 (bias free), solved to convergence (`pipeline.adapter.logistic`).
The strength is the best of `strengths` by top-1 under cross-validation over the kept images
(ties: the stronger); where a class has one image, `fixed_strength`.

Where we differ from CLIP: CLIP sweeps the strength on a validation split of the full training
set and refits on train + val; here only the budget's kept images exist, so the sweep is
k-fold cross-validation over them, and the refit is on all of them. CLIP fits on the raw
`encode_image` features; here they are unit length, as every method of this package sees them
(the strength grid assumes that scale).
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from pydantic import Field

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.config import Distinct, Section

STRENGTHS = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]  # strong to weak: ties go to the stronger


class Probe(Section):
    """CLIP's linear probe per budget: L2 logistic regression to convergence."""

    strengths: Distinct[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: list(STRENGTHS), min_length=1,
        description="L2 strengths tried, the first preferred on ties (list them strong to weak)")
    fixed_strength: float = Field(1e-3, gt=0, description="the strength where no image can be "
                                  "held out (1 shot)")
    max_iter: int = Field(1000, ge=1, description="L-BFGS iterations at most (CLIP's: 1,000)")


def choose_probe(inputs, part, strengths: list[float], fixed: float, max_iter: int,
                 pulls=None, extra=None):
    """The chosen candidate of a probe grid on one budget, refitted on all its kept images.

    Candidates are `strengths` x (one per prior in `pulls` (P, C, D), or no prior) x (one per
    entry of `extra`, a post-hoc logit term: extra(k) -> (n, C) added to the held-out logits;
    the ensemble's alpha * zero-shot). Returns (W, b, chosen index triple, CV accuracies or None).
    """
    import numpy as np
    import torch

    from pipeline.adapter.few_shot import (first_best, fit_on_kept, hits, out_of_fold_logits,
                                           val_logits)

    device = inputs.features.device
    n_priors = 1 if pulls is None else len(pulls)
    grid = [(p, s) for p in range(n_priors) for s in range(len(strengths))]
    strength_of = torch.tensor([strengths[s] for _, s in grid], device=device)
    prior_of = None if pulls is None else pulls[[p for p, _ in grid]]
    logits = (out_of_fold_logits if part.val_rows is None else val_logits)(
        inputs, part, strength_of, prior_of, max_iter)
    terms = extra or [None]
    if logits is None:
        accuracy, chosen_prior, strength, term = None, 0, fixed, 0
    else:
        accuracy = np.concatenate([100.0 * hits(logits if t is None else logits + t[None], part)
                                   / len(part.scored_labels) for t in terms])  # term-major
        best = first_best(accuracy)
        term = best // len(grid)
        chosen_prior, s = grid[best % len(grid)]
        strength = strengths[s]
    weight, bias = fit_on_kept(inputs, part, strength,
                               None if pulls is None else pulls[chosen_prior], max_iter)
    return weight, bias, (strength, chosen_prior, term), accuracy


def train_probe(inputs, protocol, settings: Probe):
    import torch

    from pipeline.adapter.few_shot import LinearClassifiers, budget_images, map_budgets, run_row

    def one(part):
        weight, bias, (strength, _, _), accuracy = choose_probe(
            inputs, part, settings.strengths, settings.fixed_strength, settings.max_iter)
        return weight, bias, run_row("probe", part, "none", "none", {"strength": strength},
                                     accuracy)

    weights, biases, rows = zip(*map_budgets(one, budget_images(inputs, protocol), protocol,
                                             inputs.features.device))
    return LinearClassifiers(torch.stack(weights), torch.stack(biases), pd.DataFrame(list(rows)),
                             inputs.class_ids.tolist(), inputs.fingerprint, "linear probes")


def load_probe(folder, fingerprint):
    from pipeline.adapter.few_shot import load_linear_classifiers

    return load_linear_classifiers(folder, fingerprint)


ADAPTER_METHODS.register("probe", settings=Probe, doc=Probe.__doc__)(
    AdapterMethod(train=train_probe, load=load_probe))
