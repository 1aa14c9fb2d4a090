"""The `train_adapter` section: the protocol every adapter method shares (which images a run
keeps, with which texts, over which seeds) and each method's own settings (`methods`, one
entry of `pipeline.adapter.methods` each)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SerializeAsAny, field_validator

from pipeline.config import Device, Distinct, Section, Whole

SELECTIONS = ("class_balanced", "global")


def _methods(raw):
    from pipeline.adapter.methods import ADAPTER_METHODS

    return ADAPTER_METHODS.validate_settings(raw)


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
    device: Device = "auto"
    methods: Annotated[dict[str, SerializeAsAny[Section]], Whole] = Field(
        default_factory=lambda: _methods({"linear": {}}), min_length=1,
        description="the adapter methods trained, each with its settings "
        "(pipeline/adapter/methods)")

    @field_validator("methods", mode="before")
    @classmethod
    def _known_methods(cls, raw):
        return _methods(raw)
