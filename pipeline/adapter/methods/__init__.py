"""Adapter methods: each module here trains one kind of adapter on the shared feature table
(`pipeline.adapter.inputs`) for every run of the protocol, and loads what it saved so that
`evaluate` can score it.

An entry registers itself with `ADAPTER_METHODS.register(<name>, settings=<its section>)` on an
`AdapterMethod`: `train(inputs, protocol, settings) -> TrainedAdapters` and `load(folder,
fingerprint) -> TrainedAdapters`. A `TrainedAdapters` has `runs` (one row per trained adapter:
run, image_ratio, text_ratio, text_source, text_mapping, selection, seed, ...), `class_ids` (the
classes in logit order), `logits(features) -> (runs, N, C)` on raw image features,
`save(folder)` and `summary()`. Modules here import only
light things at their top (params validation imports them all).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from pipeline.clip.fingerprint import check_same_clip
from pipeline.common import InputError
from pipeline.config import Registry

ADAPTER_METHODS = Registry("adapter method", "pipeline.adapter.methods")
METHODS_FILE = "methods.json"  # in a backbone's train_adapter folder: the methods, in order
RUN_COLUMNS = ["run", "image_ratio", "text_ratio", "text_source", "text_mapping", "selection",
               "seed"]


@dataclasses.dataclass(frozen=True)
class AdapterMethod:
    train: Callable  # (AdapterInputs, TrainAdapter, its settings) -> TrainedAdapters
    load: Callable  # (folder, CLIP fingerprint) -> TrainedAdapters


def load_adapters(folder: Path, fingerprint: dict | None) -> dict[str, object]:
    """Each trained method in `folder` (a `train_adapter` output), loaded by its own rule;
    refuses adapters trained on another CLIP than `fingerprint`'s (checked here for every
    method, whatever its own `load` checks)."""
    index = Path(folder) / METHODS_FILE
    if not index.is_file():
        raise InputError(f"no adapters at {folder} (no {METHODS_FILE}): the `train_adapter` "
                         "stage makes them")
    saved = json.loads(index.read_text())
    check_same_clip(fingerprint, saved.get("clip_fingerprint"), f"the adapters in {folder}",
                    "train them again on this CLIP's features (the `train_adapter` stage)")
    names = saved["methods"]
    unknown = [name for name in names if name not in ADAPTER_METHODS.names()]
    if unknown:
        raise InputError(f"{index} names adapter methods this code does not know: "
                         f"{', '.join(unknown)} (known: {', '.join(ADAPTER_METHODS.names())})")
    return {name: ADAPTER_METHODS.get(name).load(Path(folder) / name, fingerprint)
            for name in names}


__all__ = ["ADAPTER_METHODS", "AdapterMethod", "METHODS_FILE", "RUN_COLUMNS", "load_adapters"]
