"""The `zeroshot` stage's entry: every baseline of zeroshot.baselines scored on one backbone's
test images, from the feature sets `extract` wrote (images, template sets, description sets):
nothing is encoded here.

Outputs: results (one row per baseline variant: top-1 / top-5 %, what it scored with), each
baseline's own tables (`details/<name>.parquet`: CBD's explanations, the probe's validation),
the pictures of a few decisions, run.json (what was run: dataset, classes, the reference list
of class names where the index used one, model, description sources, pictures) and the
headline metrics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.common import (InputError, read_parquet_with_metadata, write_bytes, write_json,
                             write_parquet)
from pipeline.data.reference_names import METADATA_KEY
from pipeline.features.sets import set_folder
from pipeline.features.store import read_feature_set
from pipeline.zeroshot.baselines import BASELINES, Picture, TextFeatures, ZeroShotInputs
from pipeline.zeroshot.scoring import accuracy
from pipeline.zeroshot.settings import Zeroshot


@dataclasses.dataclass
class ZeroShotResult:
    results: pd.DataFrame
    tables: dict[str, pd.DataFrame]  # name -> a baseline's table (details/<name>.parquet)
    pictures: list[Picture]
    run: dict
    metrics: dict

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        write_parquet(folder / "results.parquet", self.results)
        (folder / "details").mkdir(parents=True, exist_ok=True)  # DVC outputs, even when empty
        (folder / "pictures").mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            write_parquet(folder / "details" / f"{name}.parquet", table)
        for picture in self.pictures:
            write_bytes(folder / "pictures" / picture.file, picture.png)
        write_json(folder / "run.json", self.run)
        write_json(folder / "metrics.json", self.metrics)

    def summary(self) -> list[str]:
        lines = [f"{row.method:>12} {row.variant:<38} top-1 {row.top1:5.1f}  top-5 {row.top5:5.1f}"
                 for row in self.results.itertuples()]
        classes = self.run["classes"]
        return lines + [f"{self.run['test_images']} test images, {classes} classes (chance "
                        f"{100 / classes:.1f}%)"]


def score_baselines(backbone: str, features: Path, index: Path, settings: Zeroshot,
                    card: dict, described: dict[str, dict], dataset: Callable[[int], str],
                    device: str) -> ZeroShotResult:
    """Score `settings.baselines` on `features` (extract/<backbone>, made by the CLIP of
    `card`); `index`: the data stage's tables (class names, image files); `described`: how each
    description set was made ({set: its describe entry, with `source` and `prompt`, a few words
    each}); `dataset(classes)`: what the target is, in a few words."""
    from pipeline.clip.fingerprint import fingerprint_of

    inputs = _inputs(backbone, Path(features), Path(index), settings, fingerprint_of(card),
                     described, device)
    scored = [row for name, baseline in settings.baselines.items()
              for row in BASELINES.get(name)(inputs, baseline)]
    results = pd.DataFrame([{"method": s.method, "variant": s.variant, "texts": s.texts,
                             "source": s.source, "prompt": s.prompt,
                             **_over_draws(s, inputs.test_y)} for s in scored])
    results = results.assign(backbone=backbone, model=card["model_name"],
                             pretrained=card.get("pretrained") or "trained here",
                             test_images=len(inputs.test_ids), classes=len(inputs.class_names))
    tables: dict[str, list[pd.DataFrame]] = {}
    for row in scored:
        for name, table in row.tables.items():
            tables.setdefault(name, []).append(table)
    pictures = [picture for row in scored for picture in row.pictures]
    # The reference list the class names are (absent: the dataset's own, as before the key).
    named = read_parquet_with_metadata(Path(index) / "target_classes.parquet")[1].get(
        METADATA_KEY)
    run = {"dataset": dataset(len(inputs.class_names)), "classes": len(inputs.class_names),
           **({"class_names": named} if named else {}),
           "test_images": len(inputs.test_ids), "train_images": len(inputs.train_y),
           "backbone": backbone, "model": card["model_name"], "pretrained": card.get("pretrained"),
           "templates": {name: _count_templates(texts) for name, texts in inputs.templates.items()},
           "descriptions": {name: {k: v for k, v in entry.items() if k not in ("source", "prompt")}
                            for name, entry in described.items()},
           "pictures": [picture.record for picture in pictures]}
    metrics = {f"{row['method']}/{row['variant']}": {"top1": round(row["top1"], 2),
                                                     "top5": round(row["top5"], 2)}
               for _, row in results.iterrows()}
    return ZeroShotResult(results, {name: pd.concat(parts, ignore_index=True)
                                    for name, parts in tables.items()}, pictures, run, metrics)


def _over_draws(scored, labels) -> dict:
    """top1 / top5 % and their sample std (ddof 1; WaffleCLIP's CSVs give numpy's ddof-0 std)
    over the draws of a control set (std NaN for one set)."""
    each = [accuracy(scores, labels) for scores in (scored.draws or [scored.scores])]
    out = {"draws": len(each)}
    for k in ("top1", "top5"):
        values = np.array([one[k] for one in each])
        out[k] = float(values.mean())
        out[f"{k}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return out


def _inputs(backbone: str, features: Path, index: Path, settings: Zeroshot, fingerprint: dict,
            described: dict[str, dict], device: str) -> ZeroShotInputs:
    images = read_feature_set(features / "target_images", fingerprint)
    classes = pd.read_parquet(index / "target_classes.parquet").sort_values(
        "class_id", ignore_index=True)
    position = {int(c): i for i, c in enumerate(classes["class_id"])}
    class_names = classes["class_name"].tolist()
    labels = images.ids["class_id"].map(position).to_numpy(np.int64)
    test = (images.ids["split"] == "test").to_numpy()
    train = (images.ids["split"] == "train").to_numpy()
    val = (images.ids["split"] == "val").to_numpy()  # a CoOp split file's: the probe's slice
    test_ids = images.ids.loc[test, "image_id"].to_numpy()
    table, meta = read_parquet_with_metadata(index / "target_images.parquet")
    paths = table.set_index("image_id").loc[test_ids, "path"]
    templates = {name: _template_texts(read_feature_set(
        features / "templates" / set_folder(name), fingerprint), position, name)
        for name in settings.templates}
    descriptions = {name: _descriptor_texts(read_feature_set(
        features / "descriptions" / set_folder(name), fingerprint), position, name,
        described[name]) for name in settings.descriptions}
    return ZeroShotInputs(
        backbone=backbone, class_names=class_names, train_x=images.embeddings[train],
        train_y=labels[train], test_x=images.embeddings[test],
        test_y=torch.as_tensor(labels[test]), test_ids=test_ids,
        test_paths=[Path(meta["fgvc.root"]) / path for path in paths],
        templates=templates, descriptions=descriptions, device=device,
        val_x=images.embeddings[val] if val.any() else None,
        val_y=labels[val] if val.any() else None)


def _template_texts(encoded, position: dict[int, int], name: str) -> TextFeatures:
    """A template set's prompts (each row keeps the template it was filled from)."""
    ids = encoded.ids
    _known_classes(ids, position, f"template set {name!r}")
    templates = list(dict.fromkeys(ids["template"]))
    return TextFeatures(encoded.embeddings, ids["class_id"].map(position).to_numpy(np.int64),
                        ids["text"].tolist(), "templates", f"{len(templates)} template(s): "
                        f"{templates[0]!r}" + (" ..." if len(templates) > 1 else ""))


def _known_classes(ids, position: dict[int, int], what: str) -> None:
    unknown = sorted(set(ids["class_id"]) - set(position))
    if unknown:
        raise InputError(f"{what}: class ids {unknown[:10]} are not in the dataset's classes "
                         "(extracted for another target? the extract stages make them again)")


def _count_templates(texts: TextFeatures) -> int:
    return int(np.bincount(texts.class_index).max())


def _descriptor_texts(encoded, position: dict[int, int], name: str, made: dict) -> TextFeatures:
    """A description set's descriptors, each once per class: CBD scores a class by its list of
    descriptors, so one LLM answer repeating another's must not count it twice. A control set's
    draws (its prompt_ids) stay apart: each is a list of its own."""
    ids = encoded.ids
    _known_classes(ids, position, f"description set {name!r}")
    drawn = made.get("backend") == "control"
    first = ~ids.duplicated(["prompt_id", "class_id", "text"] if drawn
                            else ["class_id", "text"]).to_numpy()
    kept = ids[first]
    return TextFeatures(encoded.embeddings[first],
                        kept["class_id"].map(position).to_numpy(np.int64), kept["text"].tolist(),
                        made["source"], made["prompt"],
                        pd.factorize(kept["prompt_id"])[0] if drawn else None)
