"""Encode image files and texts with a frozen CLIP into a feature set (see `features`).

Images are decoded and preprocessed by DataLoader workers while the model encodes the previous
batch; texts are tokenized once and encoded in length-sorted batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.clip import Clip, encode_image_batches, encode_texts
from pipeline.features import ShardWriter, hash_table


class ImageFiles(Dataset):
    """Preprocessed images from paths relative to a root."""

    def __init__(self, root: Path, paths: Sequence[str], preprocess):
        self.root, self.paths, self.preprocess = Path(root), list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.root / self.paths[i]
        try:
            with Image.open(path) as image:
                return self.preprocess(image.convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from error


def extract_image_features(clip: Clip, root: Path, index: pd.DataFrame, out: Path, *, name: str,
                           id_columns: list[str], batch_size: int, num_workers: int,
                           precision: str, shard_rows: int, device: str) -> dict:
    """Encode every image of `index` (a `path` column relative to `root`) into feature set `out`."""
    loader = DataLoader(ImageFiles(root, index["path"], clip.preprocess), batch_size=batch_size,
                        num_workers=num_workers, pin_memory=device == "cuda",
                        persistent_workers=False)
    writer = ShardWriter(out, name=name, fingerprint=clip.fingerprint, width=clip.card["embed_dim"],
                         shard_rows=shard_rows, precision=precision, input_hash=hash_table(index))
    ids = index[id_columns].reset_index(drop=True)
    done = 0
    with tqdm(total=len(index), desc=f"encode {name}", unit="img") as bar:
        for features in encode_image_batches(clip.model, loader, device):
            writer.add(ids.iloc[done:done + len(features)], features)
            done += len(features)
            bar.update(len(features))
    return writer.close()


def extract_text_features(clip: Clip, texts: pd.DataFrame, out: Path, *, name: str,
                          id_columns: list[str], batch_size: int, precision: str,
                          shard_rows: int, device: str) -> dict:
    """Encode the `text` column of `texts` into feature set `out` (ids + the text itself)."""
    with tqdm(total=len(texts), desc=f"encode {name}", unit="text") as bar:
        features = encode_texts(clip.model, clip.tokenizer, texts["text"].tolist(), batch_size,
                                device, progress=bar)
    writer = ShardWriter(out, name=name, fingerprint=clip.fingerprint, width=features.shape[1],
                         shard_rows=shard_rows, precision=precision, input_hash=hash_table(texts))
    writer.add(texts[id_columns + ["text"]].reset_index(drop=True), features.astype(np.float32))
    return writer.close()
