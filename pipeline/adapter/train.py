"""The `train_adapter` stage's entry: adapter methods of `train_adapter.methods` trained on one
backbone's shared feature table (`pipeline.adapter.methods.load_adapters` loads them back).

Each method saves into its own folder of the backbone's output folder (`<folder>/<method>/`:
`method.json`, naming the method and the CLIP it trained on, beside whatever the method saves;
the linear grid: heads.safetensors, heads.json, runs.parquet, kept_images.parquet,
val_images.parquet). DVC trains each method in its own stage, `train_adapter@<backbone>-<method>`.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch

from pipeline.adapter.few_shot import denormals_flushed
from pipeline.adapter.inputs import load_adapter_inputs
from pipeline.adapter.methods import ADAPTER_METHODS, METHOD_FILE, NO_PRIOR, method_record
from pipeline.adapter.settings import TrainAdapter
from pipeline.common import InputError, write_json


@dataclasses.dataclass
class TrainedMethods:
    # method name -> {prior set (NO_PRIOR for a method without one): its TrainedAdapters}
    methods: dict[str, dict[str, object]]
    fingerprint: dict  # of the CLIP whose features they trained on

    def save(self, folder: Path) -> None:
        """Each method into `folder`/<method>/ (a text-prior method: <method>/<prior>/ per
        prior), its record written last, in a temporary folder renamed into place: a crash
        leaves the old folder or the new one, never half of each. Refuses to replace a folder
        that is not a trained method's (no record in it)."""
        for name, by_prior in self.methods.items():
            target = Path(folder) / name
            if target.exists() and any(target.iterdir()) and not (target / METHOD_FILE).is_file():
                raise InputError(f"{target} holds other files than a trained method: give "
                                 "train_adapter another --out, or empty it")
            partial = Path(folder) / f".{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            for prior, trained in by_prior.items():
                trained.save(partial if prior == NO_PRIOR else partial / prior)
            priors = None if list(by_prior) == [NO_PRIOR] else list(by_prior)
            write_json(partial / METHOD_FILE, method_record(name, priors, self.fingerprint))
            if target.exists():
                shutil.rmtree(target)
            partial.rename(target)

    def summary(self) -> list[tuple[str, str]]:
        """(method, a line on what it trained), a line per prior."""
        return [(name, trained.summary() if prior == NO_PRIOR
                 else f"{prior} prior: {trained.summary()}")
                for name, by_prior in self.methods.items() for prior, trained in by_prior.items()]


def train_adapters(features: Path, fingerprint: dict, qformer: Path | None, settings: TrainAdapter,
                   device: str, methods: list[str] | None = None) -> TrainedMethods:
    """Train `methods` (default: every method of `settings.methods`, each with its settings
    there) on `features` (one backbone's extract folder, made by the CLIP of `fingerprint`):
    a text-prior method once per set of `settings.priors`, on inputs whose description set is
    that prior. The Q-Former in `qformer` maps the texts only if some method of `methods`
    trains on mapped texts (`AdapterMethod.maps_texts`); otherwise it is not even loaded
    (`qformer` None: there is none, as without COCO)."""
    if settings.priors is None:
        raise ValueError("settings.priors is None: resolve it first (stages.params.Params."
                         "prior_sets names the sets)")
    methods = list(settings.methods) if methods is None else list(methods)
    missing = [name for name in methods if name not in settings.methods]
    if missing:
        raise InputError(f"train_adapter.methods has no method {', '.join(map(repr, missing))} "
                         f"(methods: {', '.join(settings.methods)})")
    # the Q-Former is loaded only if some method trains on texts it maps
    mapping = any(ADAPTER_METHODS.get(name).maps_texts(settings.methods[name]) for name in methods)
    if mapping and qformer is None:  # no COCO, no Q-Former (data.coco: null)
        asking = [n for n in methods if ADAPTER_METHODS.get(n).maps_texts(settings.methods[n])]
        raise InputError(f"train_adapter.methods: {', '.join(asking)} train(s) on texts mapped "
                         "by the Q-Former, and there is none (data.coco: null)")
    inputs: dict[str, object] = {}  # description set -> its inputs, loaded once

    def inputs_with(descriptions: str):
        if descriptions not in inputs:
            inputs[descriptions] = load_adapter_inputs(features, descriptions, fingerprint,
                                                       qformer if mapping else None,
                                                       torch.device(device))
        return inputs[descriptions]

    trained = {}
    with denormals_flushed():
        for name in methods:
            method = ADAPTER_METHODS.get(name)
            if method.uses_prior:
                trained[name] = {prior: method.train(inputs_with(prior), settings,
                                                     settings.methods[name])
                                 for prior in settings.priors}
            else:
                trained[name] = {NO_PRIOR: method.train(inputs_with(settings.descriptions),
                                                        settings, settings.methods[name])}
    return TrainedMethods(trained, fingerprint)
