"""What every adapter of the grid trains on: one stacked feature table on the device.

CUB train images, then the Reed captions and LLM descriptions mapped into image space by the
Q-Former (once, not per epoch; from their pooled features or token states, whichever the
Q-Former was trained on), then, for the ablation without the bridge, the same texts' raw CLIP
text features; optionally L2-normalised; `table` says which row is what.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.adapter.training_mix import TrainingTable, build_training_table
from pipeline.features.store import FeatureSet, read_feature_set
from pipeline.qformer.model import load_qformer, map_texts
from pipeline.qformer.text_inputs import PooledTexts, TokenTexts


@dataclasses.dataclass
class AdapterInputs:
    features: torch.Tensor  # (N, D) on the device
    labels: torch.Tensor  # (N,) class indices in [0, C)
    table: TrainingTable
    class_ids: np.ndarray  # (C,) dataset class ids, in label order


def load_adapter_inputs(features: Path, fingerprint: dict, qformer: Path,
                        device: torch.device, normalize: bool,
                        unmapped: bool = False) -> AdapterInputs:
    """unmapped: also stack the raw (pooled) CLIP text features, for `text_mapping: none` runs."""
    model, saved = load_qformer(qformer, device, clip_fingerprint=fingerprint)
    tokens = saved.get("text_input", "pooled") == "tokens"  # what the Q-Former was trained on
    cub = read_feature_set(Path(features) / "cub_images", fingerprint)
    reed = read_feature_set(Path(features) / "reed_captions", fingerprint, tokens=tokens)
    llm = read_feature_set(Path(features) / "descriptions", fingerprint, tokens=tokens)
    class_ids = np.sort(cub.ids["class_id"].unique())
    # A dataset without Reed's captions has an empty set: no shards, so no id columns either.
    reed_ids = reed.ids if len(reed.ids) else pd.DataFrame({"image_id": np.empty(0, np.int64)})
    table, train, reed_train = build_training_table(cub.ids, reed_ids, llm.ids, class_ids)

    def mapped(texts: FeatureSet, rows=None) -> torch.Tensor:
        inputs = (TokenTexts.from_ragged(texts.tokens, device) if tokens
                  else PooledTexts(torch.as_tensor(texts.embeddings, device=device)))
        if rows is not None:
            inputs = inputs.subset(np.flatnonzero(rows))
        return torch.as_tensor(map_texts(model, inputs))

    parts = [torch.as_tensor(cub.embeddings[train]), mapped(reed, reed_train), mapped(llm)]
    labels = table.labels
    if unmapped:
        parts += [torch.as_tensor(reed.embeddings[reed_train]), torch.as_tensor(llm.embeddings)]
        labels = np.concatenate([labels, labels[len(table.images):]])
    stacked = torch.cat([part.to(device) for part in parts])
    if normalize:
        stacked = F.normalize(stacked, dim=-1)
    return AdapterInputs(stacked, torch.as_tensor(labels, device=device), table, class_ids)
