"""The `train_adapter` stage's entry: adapter methods of `train_adapter.methods` trained on one
backbone's shared feature table (`pipeline.adapter.methods.load_adapters` loads them back).

Each method saves into its own folder of the backbone's output folder (`<folder>/<method>/`:
`method.json`, naming the method and the CLIP it trained on, beside whatever the method saves;
the linear grid: heads.safetensors, heads.json, runs.parquet, kept_images.parquet,
val_images.parquet). DVC trains each method in its own stage, `train_adapter@<backbone>-<method>`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from pipeline.adapter.inputs import load_adapter_inputs
from pipeline.adapter.methods import ADAPTER_METHODS, METHOD_FILE, method_record
from pipeline.adapter.settings import TrainAdapter
from pipeline.common import InputError, write_json


@dataclasses.dataclass
class TrainedMethods:
    # method name -> its TrainedAdapters, or for a text-prior method {prior set: TrainedAdapters}
    methods: dict[str, object]
    fingerprint: dict  # of the CLIP whose features they trained on

    def save(self, folder: Path) -> None:
        """Each method into `folder`/<method>/ (a text-prior method: <method>/<prior>/ per
        prior), its record written last (a folder without one is an unfinished save)."""
        for name, trained in self.methods.items():
            by_prior = trained if isinstance(trained, dict) else None
            for prior, one in (by_prior or {None: trained}).items():
                one.save(Path(folder) / name / (prior or ""))
            write_json(Path(folder) / name / METHOD_FILE,
                       method_record(name, list(by_prior) if by_prior else None, self.fingerprint))

    def summary(self) -> list[str]:
        lines = []
        for name, trained in self.methods.items():
            for prior, one in (trained if isinstance(trained, dict) else {None: trained}).items():
                lines.append(f"{name}{f' ({prior} prior)' if prior else ''}: {one.summary()}")
        return lines


def train_adapters(features: Path, fingerprint: dict, qformer: Path, settings: TrainAdapter,
                   device: str, methods: list[str] | None = None) -> TrainedMethods:
    """Train `methods` (default: every method of `settings.methods`, each with its settings
    there) on `features` (one backbone's extract folder, made by the CLIP of `fingerprint`),
    texts mapped by the Q-Former in `qformer`: a text-prior method once per set of
    `settings.priors`, on inputs whose description set is that prior."""
    methods = list(settings.methods) if methods is None else list(methods)
    missing = [name for name in methods if name not in settings.methods]
    if missing:
        raise InputError(f"train_adapter.methods has no method {', '.join(map(repr, missing))} "
                         f"(methods: {', '.join(settings.methods)})")
    inputs: dict[str, object] = {}  # description set -> its inputs, loaded once

    def inputs_with(descriptions: str):
        if descriptions not in inputs:
            inputs[descriptions] = load_adapter_inputs(features, descriptions, fingerprint,
                                                       qformer, torch.device(device))
        return inputs[descriptions]

    trained = {}
    for name in methods:
        method = ADAPTER_METHODS.get(name)
        if method.uses_prior:
            trained[name] = {prior: method.train(inputs_with(prior), settings,
                                                 settings.methods[name])
                             for prior in settings.priors}
        else:
            trained[name] = method.train(inputs_with(settings.descriptions), settings,
                                         settings.methods[name])
    return TrainedMethods(trained, fingerprint)
