"""The `train_adapter` section: the protocol every adapter method shares (which images a run
keeps, with which texts, over which seeds) and each method's own settings (`methods`, one
entry of `pipeline.adapter.methods` each)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from pipeline.config import Device, Distinct, Section, Whole

SELECTIONS = ("class_balanced", "global")


# The paper's adapter, then the field's few-shot baselines (pipeline/adapter/methods).
DEFAULT_METHODS = ["linear", "probe", "ensemble", "text_prior", "tip", "tip_f", "zs_lp", "clap",
                   "lp_pp"]


def _methods(raw):
    from pipeline.adapter.methods import ADAPTER_METHODS

    return ADAPTER_METHODS.validate_settings(raw)


class Budgets(Section):
    """The few-shot protocol of every method but `linear`: one classifier per budget and seed,
    its hyper-parameters chosen by cross-validation on the budget's kept images only."""

    ratios: Distinct[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [10, 30, 50, 100],
        description="percent of each class's train images (the paper's ratios)")
    shots: Distinct[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16],
        description="images per class (the CoOp / Tip-Adapter protocol)")
    seeds: Distinct[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1,
                                 description="every budget (ratio and shot count) is drawn and "
                                 "trained once per seed: cells are mean ± std over them")
    folds: int = Field(3, ge=2, description="cross-validation folds over a budget's kept images "
                       "(fewer where a class has fewer images; none at 1 image: then each "
                       "method's value fixed in advance)")

    @model_validator(mode="after")
    def _some_budget(self) -> Budgets:
        if not self.ratios and not self.shots:
            raise ValueError("ratios and shots are both empty: no budget to train on")
        return self


class TrainAdapter(Section):
    """Adapters on frozen CLIP image features, partly trained from text (Table 1's grid)."""

    descriptions: str = Field("attributes", description="the description set the description "
                              "columns train on: a key of describe.sets or describe.files")
    selection: Distinct[Literal["class_balanced", "global"]] = Field(
        default_factory=lambda: list(SELECTIONS), min_length=1,
        description="class_balanced: the paper | global: Hirano's earlier method")
    seeds: Distinct[int] = Field(default_factory=lambda: [0], min_length=1)
    descriptions_per_image: int = Field(10, ge=1, description="descriptions standing in for one "
                                        "replaced image (Reed's captions are 10)")
    priors: Distinct[str] | None = Field(
        None, min_length=1,
        description="the description sets a text-prior method (ensemble, text_prior, tip, "
        "tip_f, zs_lp, clap, lp_pp) takes its prior from, trained once with each: keys of describe.sets or "
        "describe.files; null: train_adapter.descriptions, then every weak set of describe.sets "
        "(wrong_traits: the demo's attributes_weak)")
    budgets: Budgets = Field(default_factory=Budgets)
    device: Device = "auto"
    cpu_threads: int = Field(1, ge=0, description="torch's CPU threads (0: torch's default, "
                             "one per core; the adapters' small matmuls run fastest on one, "
                             "above all on a busy machine); the few-shot methods train that "
                             "many budgets at once instead, one torch thread each (the same "
                             "results)")
    methods: Annotated[dict[str, SerializeAsAny[Section]], Whole] = Field(
        default_factory=lambda: _methods({name: {} for name in DEFAULT_METHODS}), min_length=1,
        description="the adapter methods trained, each with its settings "
        "(pipeline/adapter/methods)")

    @field_validator("methods", mode="before")
    @classmethod
    def _known_methods(cls, raw):
        return _methods(raw)
