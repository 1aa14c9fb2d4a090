"""Stage `evaluate`: top-1 / top-5 on the CUB test split for every adapter and for zero-shot
CLIP. Outputs in <out>: results.parquet (one row per run, zero-shot included), per-class
accuracy and confusion counts (`per_class.parquet`, `confusion.parquet`: every run, long
format), and metrics.json (the headline figures, a DVC metrics file)."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.common import write_json, write_parquet
from stages.layout import artifact_option, clip_option, require, require_features


def main(features: Path = artifact_option("extract", help="Feature sets of `extract`."),
         clip_dir: Path = clip_option(),
         adapters: Path = artifact_option("train_adapter", help="Adapter grid."),
         out: Path = artifact_option("evaluate", help="Folder for the results and metrics.")
         ) -> None:
    """Score every adapter and zero-shot CLIP on the test images."""
    require(clip_dir, made_by=f"clip@{clip_dir.name}")
    require_features(features, "cub_images", "class_prompts")
    require(adapters, made_by="train_adapter")

    import numpy as np
    import pandas as pd
    import torch

    from pipeline.adapter import load_heads
    from pipeline.clip import fingerprint_of, read_card
    from pipeline.evaluate import (class_tables, class_text_embeddings, topk_accuracy,
                                   zero_shot_logits)
    from pipeline.features import read_feature_set

    fingerprint = fingerprint_of(read_card(clip_dir))
    cub = read_feature_set(features / "cub_images", fingerprint)
    prompts = read_feature_set(features / "class_prompts", fingerprint)
    heads = load_heads(adapters, fingerprint)
    info = heads.info
    runs = pd.read_parquet(adapters / "runs.parquet").set_index("run").loc[info["runs"]].reset_index()
    if "text_mapping" not in runs:  # adapters trained before the ablation existed
        runs["text_mapping"] = "qformer"

    class_ids = np.asarray(info["class_ids"])
    index_of = {int(c): i for i, c in enumerate(class_ids)}
    test = (cub.ids["split"] == "test").to_numpy()
    labels = torch.tensor(cub.ids.loc[test, "class_id"].map(index_of).to_numpy(np.int64))
    logits = heads.logits(torch.as_tensor(cub.embeddings[test]))  # (H, N, C)
    runs["top1"] = topk_accuracy(logits, labels, 1).numpy()
    runs["top5"] = topk_accuracy(logits, labels, 5).numpy()

    classifier = class_text_embeddings(prompts.embeddings,
                                       prompts.ids["class_id"].map(index_of).to_numpy(), len(class_ids))
    zs = zero_shot_logits(cub.embeddings[test], classifier)
    zero_shot = {"top1": topk_accuracy(zs, labels, 1).item(),
                 "top5": topk_accuracy(zs, labels, 5).item()}
    runs = pd.concat([runs, pd.DataFrame([{"run": "zero_shot_clip", "text_source": "zero_shot",
                                           **zero_shot}])], ignore_index=True)
    write_parquet(out / "results.parquet", runs)
    per_class, confusion = class_tables(torch.cat([logits, zs[None]]), labels,
                                        runs["run"].tolist(), class_ids)
    write_parquet(out / "per_class.parquet", per_class)
    write_parquet(out / "confusion.parquet", confusion)

    # The headline figures are the paper's selection (class-balanced) where it was trained:
    # averaging in Hirano's global selection would describe neither method.
    headline = "class_balanced" if (runs["selection"] == "class_balanced").any() else "global"

    def cell(ratio: int, source: str, mapping: str = "qformer") -> float:
        hit = runs[(runs["image_ratio"] == ratio) & (runs["text_source"] == source)
                   & (runs["selection"] == headline)
                   & (runs["text_mapping"].fillna("qformer") == mapping)]
        return round(float(hit["top1"].mean()), 2)

    headlines = {"image_100": cell(100, "none"), "image_50": cell(50, "none"),
                 "reed_50": cell(50, "reed"), "llm_50": cell(50, "llm"),
                 "reed_0": cell(0, "reed"), "llm_0": cell(0, "llm")}
    if (runs["text_mapping"] == "none").any():  # the ablation: the same texts, no Q-Former
        headlines.update(reed_50_unmapped=cell(50, "reed", "none"),
                         llm_50_unmapped=cell(50, "llm", "none"),
                         reed_0_unmapped=cell(0, "reed", "none"),
                         llm_0_unmapped=cell(0, "llm", "none"))
    # A dataset without Reed's captions trains no Reed column: no figure rather than NaN.
    headlines = {key: value for key, value in headlines.items() if not math.isnan(value)}

    write_json(out / "metrics.json",
               {"test_images": int(test.sum()), "classes": len(class_ids),
                "zero_shot_clip": {k: round(v, 2) for k, v in zero_shot.items()},
                "adapter_top1": headlines})
    reed = f"Reed {headlines['reed_0']:.2f} / " if "reed_0" in headlines else ""
    print(f"evaluate: zero-shot CLIP top-1 {zero_shot['top1']:.2f}; adapters (100,0) "
          f"{cell(100, 'none'):.2f}, (0,100) {reed}LLM {cell(0, 'llm'):.2f} "
          f"on {int(test.sum())} test images, {len(class_ids)} classes")
