"""The bridge: a BLIP-2 Q-Former that turns a CLIP text feature into a pseudo CLIP image feature.

Learnable query tokens self-attend and cross-attend to the CLIP text feature (one pooled token,
or the text tower's per-token states); their outputs are pooled and projected to the CLIP image
width. The transformer itself is `transformers`' `Blip2QFormerModel`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from pipeline.clip.fingerprint import check_same_clip
from pipeline.common import InputError, atomic_path, write_json
from pipeline.qformer.settings import QFormerModel
from pipeline.qformer.text_inputs import TextView

WEIGHTS_FILE = "qformer.safetensors"
CONFIG_FILE = "qformer.json"


class QFormerConfig(QFormerModel):
    """The architecture (train_qformer.model) with the widths it connects: what a checkpoint
    records, so that `load_qformer` rebuilds the model from it alone."""

    text_width: int  # width of the CLIP text feature or token states (cross-attention input)
    image_width: int  # width of the CLIP image feature (output)

    @classmethod
    def of(cls, model: QFormerModel, text_width: int, image_width: int) -> QFormerConfig:
        return cls(**model.model_dump(), text_width=text_width, image_width=image_width)


class TextToImageQFormer(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.config = config
        self.queries = nn.Parameter(torch.randn(1, config.num_queries, config.hidden_size) * 0.02)
        self.qformer = Blip2QFormerModel(Blip2QFormerConfig(
            hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
            encoder_hidden_size=config.text_width,
            cross_attention_frequency=config.cross_attention_frequency,
            hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout))
        self.proj = nn.Linear(config.hidden_size, config.image_width)

    def forward(self, text: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """text: (B, D_t) pooled features or (B, L, D_t) token states with mask (B, L).
        Returns (B, D_i) pseudo image features."""
        if text.dim() == 2:
            text = text[:, None, :]  # (B, 1, D_t): one token to attend to
        # Unit RMS input, whatever the text tower's scale.
        text = F.normalize(text, dim=-1) * math.sqrt(text.shape[-1])
        queries = self.queries.expand(len(text), -1, -1)  # (B, Q, H)
        states = self.qformer(query_embeds=queries, encoder_hidden_states=text,
                              encoder_attention_mask=mask).last_hidden_state  # (B, Q, H)
        pooled = states.mean(dim=1) if self.config.pooling == "mean" else states[:, 0]
        return self.proj(pooled)  # (B, D_i)


def save_qformer(model: TextToImageQFormer, folder: Path, extra: dict | None = None) -> None:
    """safetensors weights + a JSON config from which `load_qformer` rebuilds the model."""
    from pipeline.qformer.absent import ABSENT_FILE

    folder = Path(folder)
    (folder / ABSENT_FILE).unlink(missing_ok=True)  # a record of none from a run without COCO
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_model(model, str(tmp))
    write_json(folder / CONFIG_FILE,
               {"config": model.config.model_dump(), **(extra or {})})


def load_qformer(folder: Path, device: str | torch.device = "cpu",
                 clip_fingerprint: dict | None = None) -> tuple[TextToImageQFormer, dict]:
    """Rebuild a saved Q-Former from its folder alone. Returns (model in eval mode, saved JSON).
    With `clip_fingerprint`, refuses a Q-Former trained on another CLIP's features."""
    from pipeline.qformer.absent import absent_reason

    why = absent_reason(folder)  # the record of none (no COCO) wins over a stale checkpoint
    if why:
        raise InputError(f"no Q-Former at {folder}: {why}")
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"no Q-Former at {folder} (no {CONFIG_FILE}): the `train_qformer` stage "
                         "makes it")
    saved = json.loads(path.read_text())
    check_same_clip(clip_fingerprint, saved.get("clip_fingerprint"),
                    f"the Q-Former in {folder}",
                    "train it again on this CLIP's features (the `train_qformer` stage)")
    model = TextToImageQFormer(QFormerConfig.model_validate(saved["config"]))
    load_model(model, str(Path(folder) / WEIGHTS_FILE), device=str(device))
    return model.to(device).eval(), saved


@torch.inference_mode()
def map_texts(model: TextToImageQFormer, texts: TextView, batch_size: int = 4096) -> np.ndarray:
    """Pseudo image features for a whole table of texts (pooled or token inputs): (N, D_i)."""
    model.eval()
    out = [model(*texts.batch(torch.arange(i, min(i + batch_size, len(texts)),
                                           device=texts.device))).float().cpu()
           for i in range(0, len(texts), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.image_width), np.float32)
