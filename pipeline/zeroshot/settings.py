"""The `zeroshot` section: the text sets scored on every backbone, and the baselines that score
them (`baselines`, one entry of `pipeline.zeroshot.baselines` each)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SerializeAsAny, field_validator

from pipeline.config import Device, Distinct, Section, Whole


def _baselines(raw):
    from pipeline.zeroshot.baselines import BASELINES

    return BASELINES.validate_settings(raw)


class Zeroshot(Section):
    """The seed papers' baselines on every clip.backbones entry: one zeroshot@<name> stage each."""

    templates: Distinct[str] = Field(
        default_factory=lambda: ["paper", "classname", "open_clip:SIMPLE_IMAGENET_TEMPLATES"],
        min_length=1, description="CLIP prompt sets: prompts/templates/<name>.yaml, or an "
        "ensemble open_clip ships (open_clip:OPENAI_IMAGENET_TEMPLATES, ...)")
    descriptions: Distinct[str] = Field(
        default_factory=lambda: ["attributes", "descriptors", "random_words",
                                 "random_characters", "waffle_bird", "shuffled"],
        description="description sets (describe.sets, files or controls) scored the CBD way "
        "(and the real ones the CuPL way)")
    baselines: Annotated[dict[str, SerializeAsAny[Section]], Whole] = Field(
        default_factory=lambda: _baselines({"clip": {}, "cbd": {}, "cupl": {},
                                            "linear_probe": {}}),
        min_length=1,
        description="the baselines scored, each with its settings (pipeline/zeroshot/baselines)")
    device: Device = "auto"

    @field_validator("baselines", mode="before")
    @classmethod
    def _known_baselines(cls, raw):
        return _baselines(raw)
