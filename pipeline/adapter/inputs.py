"""What every adapter method trains on: one stacked feature table on the device.

The target's train images (and, with a CoOp split, its val images, marked in `table.val`:
held out, never trained on), then its per-image captions and the class descriptions mapped into
image space by the Q-Former (once, not per epoch; from their pooled features or token states,
whichever the Q-Former was trained on), then the same texts' raw CLIP text features (the
ablation without the bridge); `table` says which row is what. Without a Q-Former (no method
asked for mapped texts) the mapped rows are absent, and the Q-Former and `transformers` are not
even loaded. Features are as CLIP made them: a method normalises them if its rule says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.adapter.training_mix import TrainingTable, build_training_table
from pipeline.features.sets import set_folder
from pipeline.features.store import FeatureSet, read_feature_set


@dataclasses.dataclass
class AdapterInputs:
    # (N, D) on the device: images | mapped texts | raw texts (mapped: False: images | raw texts)
    features: torch.Tensor
    labels: torch.Tensor  # (N,) class indices in [0, C)
    # mapped: the first len(table.labels) rows, the raw texts after them; not mapped: every row
    # (images, then the raw texts), `raw_start` says where the raw texts begin
    table: TrainingTable
    class_ids: np.ndarray  # (C,) dataset class ids, in label order
    fingerprint: dict  # of the CLIP whose features these are
    mapped: bool = True  # False: loaded without a Q-Former, no mapped rows

    @property
    def has_captions(self) -> bool:
        return len(self.table.captions) > 0

    @property
    def raw_start(self) -> int:
        """The first row of the raw CLIP text features (captions, then descriptions)."""
        return len(self.table.labels) if self.mapped else len(self.table.images)


def load_adapter_inputs(features: Path, descriptions: str, fingerprint: dict,
                        qformer: Path | None, device: torch.device) -> AdapterInputs:
    """One backbone's training table: `features` (extract/<backbone>) holds target_images,
    target_captions and descriptions/<descriptions>, made by the CLIP of `fingerprint`, whose
    Q-Former is in `qformer` (None: no mapped rows, `mapped` False)."""
    features = Path(features)
    tokens = False
    if qformer is not None:
        from pipeline.qformer.model import load_qformer  # transformers: seconds to import

        model, saved = load_qformer(qformer, device, clip_fingerprint=fingerprint)
        tokens = saved.get("text_input", "pooled") == "tokens"  # what it was trained on
    images = read_feature_set(features / "target_images", fingerprint)
    captions = read_feature_set(features / "target_captions", fingerprint, tokens=tokens)
    described = read_feature_set(features / "descriptions" / set_folder(descriptions), fingerprint,
                                 tokens=tokens)
    class_ids = np.sort(images.ids["class_id"].unique())
    # A dataset without per-image captions has an empty set: no shards, so no id columns either.
    caption_ids = (captions.ids if len(captions.ids)
                   else pd.DataFrame({"image_id": np.empty(0, np.int64)}))
    table, train, captions_train = build_training_table(images.ids, caption_ids, described.ids,
                                                        class_ids)

    def mapped(texts: FeatureSet, rows=None) -> torch.Tensor:
        from pipeline.qformer.model import map_texts
        from pipeline.qformer.text_inputs import PooledTexts, TokenTexts

        inputs = (TokenTexts.from_ragged(texts.tokens, device) if tokens
                  else PooledTexts(torch.as_tensor(texts.embeddings, device=device)))
        if rows is not None:
            inputs = inputs.subset(np.flatnonzero(rows))
        return torch.as_tensor(map_texts(model, inputs))

    parts = [torch.as_tensor(images.embeddings[train])]
    labels = table.labels
    if qformer is not None:
        parts += [mapped(captions, captions_train), mapped(described)]
        labels = np.concatenate([labels, labels[len(table.images):]])
    parts += [torch.as_tensor(captions.embeddings[captions_train]),
              torch.as_tensor(described.embeddings)]
    stacked = torch.cat([part.to(device) for part in parts])
    return AdapterInputs(stacked, torch.as_tensor(labels, device=device), table, class_ids,
                         fingerprint, mapped=qformer is not None)
