"""`text_prior`: the linear probe pulled toward text prototypes, on each budget: text used as
a prior on the probe's weights rather than as extra training samples (the paper's way).

Rule: W and b minimise the mean cross-entropy over the kept images + strength *
||W - scale * T||^2, T the unit class prototypes of the description set's texts: through the
Q-Former (`mapping: qformer`, pseudo image features, the paper's bridge) or their raw CLIP
text features (`none`). A strong pull gives the prototype classifier (zero-shot when the texts
are raw), a weak one CLIP's plain probe; strength and scale are chosen together by top-1 under
cross-validation over the kept images (ties: the first scale, then the stronger pull); where a
class has one image, `fixed_strength` and the first scale.

Source: the L2 pull toward zero-shot weights of CLAP's constraint (Silva-Rodriguez et al.,
CVPR 2024, eq. 5) and of ProGrad-style priors, with one strength for all classes chosen on
held-out kept images instead of CLAP's class-wise one set from the support set (see `clap`),
and the prototypes from any text set, mapped or raw.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from pydantic import Field

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.config import Distinct, Section


class TextPrior(Section):
    """A linear probe pulled toward the description set's class prototypes, per budget."""

    mapping: Literal["qformer", "none"] = Field(
        "none", description="none: raw CLIP text features (a zero-shot prior) | qformer: the "
        "texts through the Q-Former")
    scales: Distinct[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [10.0, 30.0], min_length=1,
        description="lengths of the prototypes the weights are pulled to, the first preferred")
    strengths: Distinct[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1.0, 1e-1, 1e-2, 1e-3, 1e-4], min_length=1,
        description="pull strengths tried (strong to weak)")
    fixed_strength: float = Field(1e-2, gt=0, description="the pull where no image can be held "
                                  "out (1 shot)")
    max_iter: int = Field(1000, ge=1)


def train_text_prior(inputs, protocol, settings: TextPrior):
    import torch

    from pipeline.adapter.few_shot import (LinearClassifiers, budget_images, map_budgets,
                                           run_row, text_prototypes)
    from pipeline.adapter.methods.probe import choose_probe

    prototypes = text_prototypes(inputs, settings.mapping)
    pulls = torch.stack([scale * prototypes for scale in settings.scales])  # (P, C, D)

    def one(part):
        weight, bias, (strength, prior, _), accuracy = choose_probe(
            inputs, part, settings.strengths, settings.fixed_strength, settings.max_iter,
            pulls=pulls)
        return weight, bias, run_row("text_prior", part, "descriptions", settings.mapping,
                                     {"strength": strength, "scale": settings.scales[prior]},
                                     accuracy)

    weights, biases, rows = zip(*map_budgets(one, budget_images(inputs, protocol), protocol,
                                             inputs.features.device))
    return LinearClassifiers(torch.stack(weights), torch.stack(biases), pd.DataFrame(list(rows)),
                             inputs.class_ids.tolist(), inputs.fingerprint,
                             "probes pulled to text prototypes")


def load_text_prior(folder, fingerprint):
    from pipeline.adapter.few_shot import load_linear_classifiers

    return load_linear_classifiers(folder, fingerprint)


ADAPTER_METHODS.register("text_prior", settings=TextPrior, doc=TextPrior.__doc__)(
    AdapterMethod(train=train_text_prior, load=load_text_prior, uses_prior=True,
                  maps_texts=lambda settings: settings.mapping == "qformer"))
