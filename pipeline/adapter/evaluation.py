"""The `evaluate` stage's entry: every trained adapter of one backbone scored on the target's
test images (the only place test labels are read). Zero-shot figures are the `zeroshot`
stage's: it scores the same test images with the same features.

Outputs: results (one row per adapter: method, its run's settings, top-1 / top-5 %), per-class
accuracy and confusion counts of every adapter (long format), and the headline metrics of the
paper's method (class-balanced selection where it was trained).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.adapter.methods import load_adapters
from pipeline.common import write_json, write_parquet
from pipeline.evaluate.metrics import class_tables, topk_accuracy
from pipeline.features.store import FeatureSet

HEADLINE_METHOD = "linear"  # the paper's adapter: the headline metrics are its cells


@dataclasses.dataclass
class Evaluation:
    results: pd.DataFrame
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    metrics: dict

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        write_parquet(folder / "results.parquet", self.results)
        write_parquet(folder / "per_class.parquet", self.per_class)
        write_parquet(folder / "confusion.parquet", self.confusion)
        write_json(folder / "metrics.json", self.metrics)

    def summary(self) -> str:
        top = self.metrics.get("adapter_top1", {})
        text = ", ".join(f"{key} {value:.2f}" for key, value in top.items()
                         if key.endswith("_0") or key == "image_100")
        return (f"{len(self.results)} adapters on {self.metrics['test_images']} test images, "
                f"{self.metrics['classes']} classes; top-1 {text}")


def evaluate_adapters(adapters: Path, images: FeatureSet, fingerprint: dict,
                      methods: list[str]) -> Evaluation:
    """Score every method of `methods` in `adapters` (a backbone's `train_adapter` folder, one
    folder per method) on the test rows of `images` (the target_images feature set of the same
    CLIP)."""
    test = (images.ids["split"] == "test").to_numpy()
    features = torch.as_tensor(images.embeddings[test])
    results, per_class, confusion, class_ids = [], [], [], None
    loaded = load_adapters(adapters, fingerprint, methods)
    for method, trained in ((m, one) for m, each in loaded.items() for one in each):
        class_ids = np.asarray(trained.class_ids)
        index_of = {int(c): i for i, c in enumerate(class_ids)}
        labels = torch.tensor(images.ids.loc[test, "class_id"].map(index_of).to_numpy(np.int64))
        logits = trained.logits(features)  # (H, N, C)
        runs = trained.runs.assign(method=method)
        runs["top1"] = topk_accuracy(logits, labels, 1).numpy()
        runs["top5"] = topk_accuracy(logits, labels, 5).numpy()
        classes, counts = class_tables(logits, labels, runs["run"].tolist(), class_ids)
        results.append(runs)
        per_class.append(classes.assign(method=method))
        confusion.append(counts.assign(method=method))
    results = pd.concat(results, ignore_index=True)
    metrics = {"test_images": int(test.sum()), "classes": len(class_ids),
               "adapter_top1": headlines(results[results["method"] == HEADLINE_METHOD])}
    return Evaluation(results, pd.concat(per_class, ignore_index=True),
                      pd.concat(confusion, ignore_index=True), metrics)


def headlines(runs: pd.DataFrame) -> dict[str, float]:
    """Table 1's telling cells, top-1 of the paper's selection (class-balanced) where it was
    trained: averaging in Hirano's global selection would describe neither method."""
    headline = "class_balanced" if (runs["selection"] == "class_balanced").any() else "global"

    def cell(ratio: int, source: str, mapping: str = "qformer") -> float:
        hit = runs[(runs["image_ratio"] == ratio) & (runs["text_source"] == source)
                   & (runs["selection"] == headline) & (runs["text_mapping"] == mapping)]
        return round(float(hit["top1"].mean()), 2)

    figures = {"image_100": cell(100, "none"), "image_50": cell(50, "none")}
    for mapping, suffix in (("qformer", ""), ("none", "_unmapped")):
        for source in ("captions", "descriptions"):
            for ratio in (50, 0):
                if mapping == "none" and not (runs["text_mapping"] == "none").any():
                    continue
                figures[f"{source}_{ratio}{suffix}"] = cell(ratio, source, mapping)
    # A dataset without per-image captions trains no caption column: no figure rather than NaN.
    return {key: value for key, value in figures.items() if not math.isnan(value)}
