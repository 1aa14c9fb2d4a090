"""The `train_qformer` section: the Q-Former's architecture (`model`, recorded in its checkpoint)
and how it is trained on COCO's caption/image features."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config import Device, Section


class QFormerModel(Section):
    """The architecture: learnable queries cross-attending to the CLIP text feature."""

    num_queries: int = Field(8, ge=1, description="BLIP-2 has 32 queries of width 768")
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=8)
    cross_attention_frequency: int = Field(1, ge=1)
    pooling: Literal["mean", "first"] = Field("mean", description="how the query outputs "
                                              "become one feature")
    dropout: float = Field(0.1, ge=0, lt=1)


class TrainQFormer(Section):
    """Train the Q-Former that maps CLIP text features to pseudo CLIP image features."""

    text_input: Literal["pooled", "tokens"] = Field(
        "pooled", description="pooled: one CLIP text feature | tokens: the text tower's "
        "per-token states (extract.texts.tokens: true)")
    model: QFormerModel = Field(default_factory=QFormerModel)
    loss: Literal["pairwise_cosine", "info_nce", "info_nce_dot"] = Field(
        "pairwise_cosine", description="pairwise_cosine (the paper) | info_nce | info_nce_dot")
    margin: float = Field(0.0, ge=-1, le=1)
    weighting: Literal["all_pairs", "balanced"] = Field(
        "balanced", description="pairwise_cosine: all_pairs (1/N^2, the paper) | balanced "
        "(matched and unmatched pairs weigh the same)")
    temperature: float = Field(0.07, gt=0, description="info_nce only")
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    device: Device = "auto"
    compile: Literal["auto", True, False] = Field(
        "auto", description="torch.compile the training forward: true | false | auto (on CUDA "
        "only)")

    def compiles_on(self, device_type: str) -> bool:
        """`compile` resolved for a device: auto compiles on CUDA only (on the CPU compiling
        costs more than it saves at the demo's size, and the demo keeps the eager loop's bytes)."""
        return device_type == "cuda" if self.compile == "auto" else self.compile
