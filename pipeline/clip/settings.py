"""The `clip` section: every frozen CLIP the project resolves (one `clip@<name>` stage each, all
scored zero-shot), which of them the adapter chain runs on, and how the demo trains its own."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from pipeline.config import Named, Section, StageNames


class Backbone(Section):
    """One frozen CLIP: a model of a CLIP library (pipeline/clip/loaders) and its weights."""

    library: str = Field("open_clip", description="open_clip | transformers (Hugging Face "
                         "CLIPModel or SiglipModel)")
    model: str = Field(description="open_clip: a model name (ViT-B-32); transformers: a hub "
                       "id or a local folder")
    pretrained: str | None = Field(description="open_clip: a weights tag (openai) or a "
                                   "checkpoint file, null: train it here (the demo); "
                                   "transformers: the hub revision (main)")

    @field_validator("library")
    @classmethod
    def _known_library(cls, library: str) -> str:
        from pipeline.clip.loaders import CLIP_LIBRARIES

        if library not in CLIP_LIBRARIES.names():
            raise ValueError(f"{library!r} is not a known CLIP library (known: "
                             f"{', '.join(CLIP_LIBRARIES.names())})")
        return library


class DemoClipTraining(Section):
    """How a backbone with `pretrained: null` is trained here: contrastively, on COCO's pairs."""

    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    seed: int = 0


def _demo_backbones() -> dict[str, Backbone]:
    return {"demo-tiny": Backbone(model="fgvc-demo-tiny", pretrained=None),
            "demo-micro": Backbone(model="fgvc-demo-micro", pretrained=None)}


class ClipSettings(Section):
    """The frozen CLIPs."""

    backbones: Named[Backbone] = Field(
        default_factory=_demo_backbones, description="every CLIP resolved (one clip@<name> "
        "stage each), all scored zero-shot")
    adapter_backbones: StageNames = Field(
        default_factory=lambda: ["demo-tiny"], description="the backbones the adapter chain "
        "(Q-Former, adapters, evaluate) runs on: keys of backbones")
    demo_train: DemoClipTraining = Field(default_factory=DemoClipTraining,
                                         description="only read for pretrained: null")

    @model_validator(mode="after")
    def _adapter_backbones_are_listed(self) -> ClipSettings:
        unknown = [name for name in self.adapter_backbones if name not in self.backbones]
        if unknown:
            raise ValueError(f"adapter_backbones: {', '.join(map(repr, unknown))} not in "
                             f"clip.backbones ({', '.join(self.backbones)})")
        return self
