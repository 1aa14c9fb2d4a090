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

Each method trains in its own DVC stage (`train_adapter@<backbone>-<method>`) into its own
folder of the backbone's `train_adapter` folder, beside a `method.json` naming it, its priors
and the CLIP it trained on: changing one method's settings retrains that method alone. A
text-prior method (`uses_prior`) trains once per prior set, into `<method>/<prior>/`; its runs
carry the set in a `prior` column and in their names (`ensemble-shots01-s1-attributes_weak`).
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
METHOD_FILE = "method.json"  # in each method's folder: its name and the CLIP it trained on
RUN_COLUMNS = ["run", "image_ratio", "text_ratio", "text_source", "text_mapping", "selection",
               "seed"]


@dataclasses.dataclass(frozen=True)
class AdapterMethod:
    train: Callable  # (AdapterInputs, TrainAdapter, its settings) -> TrainedAdapters
    load: Callable  # (folder, CLIP fingerprint) -> TrainedAdapters
    # True: a text-prior method, trained once per set of `train_adapter.priors`, each time on
    # inputs whose description set is that prior (saved in <method>/<prior>/)
    uses_prior: bool = False
    # (its settings) -> True where it trains on texts mapped by the Q-Former: only then is the
    # Q-Former loaded (and `transformers` imported) for it
    maps_texts: Callable = lambda settings: False


NO_PRIOR = "none"  # the `prior` of a method that takes none


def method_record(name: str, priors: list[str] | None, fingerprint: dict | None) -> dict:
    """What `METHOD_FILE` holds for a method trained on the CLIP of `fingerprint`, once per set
    of `priors` (None: a method without a text prior)."""
    return {"method": name, "priors": priors, "clip_fingerprint": fingerprint}


def with_prior(trained, prior: str):
    """`trained` (a method's TrainedAdapters) with its runs marked as trained on `prior`: a
    `prior` column, and the set in each run's name (unique across a method's priors)."""
    runs = trained.runs
    named = runs["run"] if prior == NO_PRIOR else runs["run"] + f"-{prior}"
    trained.runs = runs.assign(run=named, prior=prior)
    return trained


def load_adapters(folder: Path, fingerprint: dict | None,
                  methods: list[str]) -> dict[str, list]:
    """Each method of `methods` from its folder in `folder` (a backbone's `train_adapter`
    output), loaded by its own rule: method -> its TrainedAdapters, one per prior (runs marked
    by `with_prior`). Refuses a method folder that is missing, holds another method, or was
    trained on another CLIP than `fingerprint`'s (checked here for every method, whatever its
    own `load` checks). Folders of methods not listed are ignored: a method dropped from the
    params keeps its folder on disk, but is no longer scored."""
    unknown = [name for name in methods if name not in ADAPTER_METHODS.names()]
    if unknown:
        raise InputError(f"adapter methods this code does not know: {', '.join(unknown)} "
                         f"(known: {', '.join(ADAPTER_METHODS.names())})")
    loaded = {}
    for name in methods:
        record = Path(folder) / name / METHOD_FILE
        if not record.is_file():
            raise InputError(f"no trained {name!r} adapters at {record.parent} (no "
                             f"{METHOD_FILE}): the `train_adapter` stage makes them "
                             f"(train_adapter@{Path(folder).name}-{name})")
        saved = json.loads(record.read_text())
        if saved.get("method") != name:
            raise InputError(f"{record} is the record of method {saved.get('method')!r}, not "
                             f"{name!r}: train {name!r} again (the `train_adapter` stage)")
        check_same_clip(fingerprint, saved.get("clip_fingerprint"),
                        f"the {name} adapters in {record.parent}",
                        "train them again on this CLIP's features (the `train_adapter` stage)")
        load = ADAPTER_METHODS.get(name).load
        priors = saved.get("priors")
        loaded[name] = ([with_prior(load(record.parent, fingerprint), NO_PRIOR)] if priors is None
                        else [with_prior(load(record.parent / prior, fingerprint), prior)
                              for prior in priors])
    return loaded


__all__ = ["ADAPTER_METHODS", "AdapterMethod", "METHOD_FILE", "NO_PRIOR", "RUN_COLUMNS",
           "load_adapters", "method_record", "with_prior"]
