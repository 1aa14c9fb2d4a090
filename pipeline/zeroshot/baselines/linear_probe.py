"""`linear_probe`: CLIP's linear-probe protocol (Radford et al., ICML 2021, section 3.2): L2-
regularised logistic regression on every train image's features, the strength picked on a
class-stratified held-out slice of train, then refit on all of train: the upper reference.
With a CoOp split (`data.target.coop_split`), the strength is picked on its val images instead
and the probe is the one fitted on train with it, as CoOp's `lpclip/linear_probe.py` does.
Where we differ: full-batch L-BFGS with a warm-started path over the strengths
(`pipeline.zeroshot.probe`), instead of scikit-learn's solver with a parametric binary search."""

from __future__ import annotations

from pydantic import Field, field_validator

from pipeline.config import Distinct, Section
from pipeline.zeroshot.baselines import BASELINES, Scored, ZeroShotInputs


class LinearProbeSettings(Section):
    """CLIP's protocol: L2 logistic regression, strength picked on held-out train."""

    strengths: Distinct[float] = Field(
        default_factory=lambda: [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], min_length=1,
        description="lambda of lambda * ||W||^2, tried from strong to weak")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="of each class's train images")
    max_iter: int = Field(100, ge=1, description="L-BFGS iterations per strength")
    seed: int = 0

    @field_validator("strengths")
    @classmethod
    def _positive(cls, strengths: list[float]) -> list[float]:
        if any(s < 0 for s in strengths):
            raise ValueError("strengths must be >= 0")
        return strengths


@BASELINES.register("linear_probe", settings=LinearProbeSettings)
def score_probe(inputs: ZeroShotInputs, settings: LinearProbeSettings) -> list[Scored]:
    """The linear probe on every train image, scored on the test images."""
    from pipeline.zeroshot.probe import fit_linear_probe

    probe = fit_linear_probe(inputs.train_x, inputs.train_y, len(inputs.class_names),
                             strengths=settings.strengths, val_fraction=settings.val_fraction,
                             seed=settings.seed, max_iter=settings.max_iter, device=inputs.device,
                             val=None if inputs.val_x is None else (inputs.val_x, inputs.val_y))
    where = ("held-out train" if inputs.val_x is None
             else f"the split's {len(inputs.val_y)} val images")
    return [Scored("linear_probe", "logistic regression", 0, f"{len(inputs.train_y)} train images",
                   f"L2 strength {probe.strength:g} (picked on {where})",
                   probe.logits(inputs.test_x).cpu(), tables={"linear_probe": probe.validation})]
