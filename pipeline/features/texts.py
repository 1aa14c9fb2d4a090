"""Encode texts with a frozen CLIP into a resumable feature set (see `store`).

Texts are tokenized once per shard and encoded in length-sorted batches, so similar lengths
share a batch. Besides the pooled embedding, a set can keep the text tower's per-token states
(the final layer, after its layer norm, before pooling and projection: what a Q-Former
cross-attends to with `text_input: tokens`). Only real tokens are kept, start and end tokens
included, never the padding up to the context length: a COCO caption has about 14 tokens of 77.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline.clip.base import Clip
from pipeline.features.encoding import ExtractResult, amp_dtype, autocast_context, compute_variant
from pipeline.features.settings import ExtractSettings
from pipeline.features.store import RaggedTokens, ShardPlan, resume, write_manifest, write_shard


@torch.inference_mode()
def encode_text_shard(clip: Clip, texts: list[str], batch_size: int, device: str,
                      amp: str = "float16", progress=None,
                      tokens: bool = False) -> tuple[np.ndarray, RaggedTokens | None]:
    """Encode texts to (N, D) float32 embeddings in input order and, with `tokens`, their
    per-token states (ragged, float32)."""
    ids, lengths = clip.tokenize(list(texts))  # (N, L), (N,): real tokens, start .. end
    order = torch.argsort(lengths, descending=True, stable=True)
    torch_device = torch.device(device)
    dtype = amp_dtype(torch_device, amp)
    out = np.empty((len(texts), clip.card["embed_dim"]), np.float32)
    per_text: list[np.ndarray | None] = [None] * len(texts)
    for start in range(0, len(texts), batch_size):
        index = order[start:start + batch_size]
        batch = ids[index].to(torch_device)
        with autocast_context(torch_device, dtype):
            if tokens:
                features, states = clip.encode_text_states(batch)  # (B, D), (B, L, W)
            else:
                features = clip.model.encode_text(batch)
        out[index.numpy()] = features.float().cpu().numpy()
        if tokens:
            real = torch.arange(states.shape[1], device=torch_device) < lengths[index, None].to(
                torch_device)  # (B, L)
            flat = states[real].float().cpu().numpy()  # (sum of lengths, W), batch order
            cuts = np.cumsum(lengths[index].numpy())[:-1]
            for row, part in zip(index.tolist(), np.split(flat, cuts)):
                per_text[row] = part
        if progress is not None:
            progress.update(len(index))
    return out, (RaggedTokens.from_rows(per_text, clip.token_width) if tokens else None)


def extract_text_features(clip: Clip, texts: pd.DataFrame, out: Path, *, name: str,
                          id_columns: list[str], settings: ExtractSettings, device: str,
                          tokens: bool = False, progress: bool = True) -> ExtractResult:
    """Encode the `text` column of `texts` into feature set `out` (ids + the text itself), with
    per-token states beside each embedding if `tokens`."""
    table = texts[id_columns + ["text"]].reset_index(drop=True)
    plan = ShardPlan.build(table, name=name, fingerprint=clip.fingerprint,
                           width=clip.card["embed_dim"], precision=settings.precision,
                           shard_rows=settings.shard_rows, variant=compute_variant(settings, device),
                           token_width=clip.token_width if tokens else None)
    resumed = resume(out, plan)
    done = resumed.kept
    written = {}
    with tqdm(total=plan.rows, desc=f"encode {name}", unit="text", disable=not progress) as bar:
        for index in range(plan.num_shards):
            start, stop = plan.span(index)
            if index in done:
                bar.update(stop - start)
                continue
            embeddings, states = encode_text_shard(
                clip, table["text"].iloc[start:stop].tolist(), settings.texts.batch_size, device,
                settings.amp, progress=bar, tokens=tokens)
            written[index] = write_shard(out, plan, index, table.iloc[start:stop], embeddings,
                                         tokens=states)
    manifest = write_manifest(out, plan, {**done, **written})
    return ExtractResult(manifest, len(done), len(written), resumed.damaged)
