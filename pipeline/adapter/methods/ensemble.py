"""`ensemble`: the output ensemble of a linear probe and a zero-shot classifier (WiSE-FT's
output-space ensemble, Wortsman et al. 2022, section 2 and appendix: logits of the fine-tuned
model plus a weighted zero-shot model's), on each budget.

Rule: logits = probe(x) + alpha * 100 * x . T^T, with x the unit image feature, T the unit
zero-shot class vectors of the description set (CBD's classifier: each class's mean
normalised description feature, renormalised) and 100 CLIP's logit scale. The probe is
`probe`'s rule; its strength and alpha are chosen together by top-1 under cross-validation
over the kept images (ties: the first listed alpha, by default the smallest, toward the probe
alone; then the stronger probe); where a class has one image, `fixed_strength` and
`fixed_alpha`. Since both parts are linear, the ensemble is saved as one linear classifier.

Where we differ from WiSE-FT: it mixes with (1 - alpha) and alpha and fixes alpha = 0.5 (no
validation); here the zero-shot term's weight is searched on held-out kept images and alpha = 0
(the probe alone) is a candidate, so a misleading text prior can be switched off.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from pydantic import Field

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.adapter.methods.probe import STRENGTHS
from pipeline.config import Distinct, Section


class Ensemble(Section):
    """A linear probe plus alpha x the description set's zero-shot logits, per budget."""

    alphas: Distinct[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0], min_length=1,
        description="weights of the zero-shot logits tried, the first preferred on ties")
    strengths: Distinct[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: list(STRENGTHS), min_length=1,
        description="the probe's L2 strengths tried (strong to weak)")
    fixed_alpha: float = Field(1.0, ge=0, description="alpha where no image can be held out")
    fixed_strength: float = Field(1e-3, gt=0)
    max_iter: int = Field(1000, ge=1)


def train_ensemble(inputs, protocol, settings: Ensemble):
    import torch

    from pipeline.adapter.few_shot import (CLIP_LOGIT_SCALE, LinearClassifiers, budget_images,
                                           map_budgets, run_row, scored_features,
                                           text_prototypes)
    from pipeline.adapter.methods.probe import choose_probe

    zero_shot = CLIP_LOGIT_SCALE * text_prototypes(inputs, "none")  # (C, D)

    def one(part):
        scores = scored_features(inputs, part) @ zero_shot.T  # (n, C) of the scored images
        weight, bias, (strength, _, term), accuracy = choose_probe(
            inputs, part, settings.strengths, settings.fixed_strength, settings.max_iter,
            extra=[alpha * scores for alpha in settings.alphas])
        alpha = settings.alphas[term] if accuracy is not None else settings.fixed_alpha
        return weight + alpha * zero_shot, bias, run_row(
            "ensemble", part, "descriptions", "none", {"strength": strength, "alpha": alpha},
            accuracy)

    weights, biases, rows = zip(*map_budgets(one, budget_images(inputs, protocol), protocol,
                                             inputs.features.device))
    return LinearClassifiers(torch.stack(weights), torch.stack(biases), pd.DataFrame(list(rows)),
                             inputs.class_ids.tolist(), inputs.fingerprint,
                             "probe + zero-shot ensembles")


def load_ensemble(folder, fingerprint):
    from pipeline.adapter.few_shot import load_linear_classifiers

    return load_linear_classifiers(folder, fingerprint)


ADAPTER_METHODS.register("ensemble", settings=Ensemble, doc=Ensemble.__doc__)(
    AdapterMethod(train=train_ensemble, load=load_ensemble, uses_prior=True))
