"""Readers of COCO Captions 2014: the Karpathy split file, or the official annotation files.

Both give the index schema of `pipeline.data.cub`: images (image_id, path, split) and captions
(image_id, caption_index, text), paths relative to the COCO root (`train2014/...`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.cub import DatasetLayoutError

KARPATHY_SPLITS = ("train", "restval", "val", "test")


def read_karpathy_coco(karpathy_json: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Images and captions of Karpathy's `dataset_coco.json` (split: train/restval/val/test)."""
    karpathy_json = Path(karpathy_json)
    if not karpathy_json.is_file():
        raise DatasetLayoutError(f"missing Karpathy split file {karpathy_json}")
    entries = json.loads(karpathy_json.read_text())["images"]
    images, captions = [], []
    for entry in entries:
        if entry["split"] not in KARPATHY_SPLITS:
            raise DatasetLayoutError(f"{karpathy_json}: unknown split {entry['split']!r}")
        image_id = int(entry["cocoid"])
        images.append((image_id, f"{entry['filepath']}/{entry['filename']}", entry["split"]))
        captions.extend((image_id, i, s["raw"].strip()) for i, s in enumerate(entry["sentences"]))
    return _tables(images, captions)


def read_coco_annotations(coco_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Images and captions of `annotations/captions_{train,val}2014.json` (split: train/val)."""
    images, captions = [], []
    for folder, split in (("train2014", "train"), ("val2014", "val")):
        file = Path(coco_root) / "annotations" / f"captions_{folder}.json"
        if not file.is_file():
            raise DatasetLayoutError(f"missing COCO annotation file {file}")
        content = json.loads(file.read_text())
        images.extend((int(i["id"]), f"{folder}/{i['file_name']}", split) for i in content["images"])
        count: dict[int, int] = {}
        for a in sorted(content["annotations"], key=lambda a: a["id"]):
            index = count.get(a["image_id"], 0)
            count[a["image_id"]] = index + 1
            captions.append((int(a["image_id"]), index, a["caption"].strip()))
    return _tables(images, captions)


def _tables(images: list, captions: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    image_table = pd.DataFrame(images, columns=["image_id", "path", "split"]).astype(
        {"image_id": np.int64}).sort_values("image_id", ignore_index=True)
    caption_table = pd.DataFrame(captions, columns=["image_id", "caption_index", "text"]).astype(
        {"image_id": np.int64, "caption_index": np.int32})
    return image_table, caption_table.sort_values(["image_id", "caption_index"], ignore_index=True)
