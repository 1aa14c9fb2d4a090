"""The `train_adapter` stage's entry: every adapter method of `train_adapter.methods` trained on
one backbone's shared feature table (`pipeline.adapter.methods.load_adapters` loads them back).

A backbone's output folder holds `methods.json` (the methods, in order) and one folder per
method with whatever that method saves (the linear grid: heads.safetensors, heads.json,
runs.parquet, kept_images.parquet, val_images.parquet).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from pipeline.adapter.inputs import load_adapter_inputs
from pipeline.adapter.methods import ADAPTER_METHODS, METHODS_FILE
from pipeline.adapter.settings import TrainAdapter
from pipeline.common import write_json


@dataclasses.dataclass
class TrainedMethods:
    methods: dict[str, object]  # method name -> its TrainedAdapters
    fingerprint: dict  # of the CLIP whose features they trained on

    def save(self, folder: Path) -> None:
        for name, trained in self.methods.items():
            trained.save(Path(folder) / name)
        write_json(Path(folder) / METHODS_FILE, {"methods": list(self.methods),
                                                 "clip_fingerprint": self.fingerprint})

    def summary(self) -> list[str]:
        return [f"{name}: {trained.summary()}" for name, trained in self.methods.items()]


def train_adapters(features: Path, fingerprint: dict, qformer: Path, settings: TrainAdapter,
                   device: str) -> TrainedMethods:
    """Train each method of `settings.methods` on `features` (one backbone's extract folder,
    made by the CLIP of `fingerprint`), texts mapped by the Q-Former in `qformer`."""
    inputs = load_adapter_inputs(features, settings.descriptions, fingerprint, qformer,
                                 torch.device(device))
    return TrainedMethods({name: ADAPTER_METHODS.get(name).train(inputs, settings, method)
                           for name, method in settings.methods.items()}, fingerprint)
