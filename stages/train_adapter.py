"""Stage `train_adapter`: the Table 1 grid of adapters (image ratio x text source x selection
x seed), trained together as stacked linear heads on cached features.

Outputs in <out>: heads.safetensors (weight (H, C, D), bias (H, C)), heads.json (run order,
class ids, feature settings, training settings, CLIP fingerprint), runs.parquet (one row per
run: pool sizes and, with early stopping, its best step and validation top-1),
kept_images.parquet and val_images.parquet (run, image_id: which images each run kept, and
which it was validated on; empty without early stopping), for audit.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.common import InputError, write_parquet
from stages.common import PARAMS_OPTION, resolve_device
from stages.layout import artifact_option, clip_option, require, require_features
from stages.params import load_params


def main(features: Path = artifact_option("extract", help="Feature sets of `extract`."),
         clip_dir: Path = clip_option(),
         qformer: Path = artifact_option("train_qformer", "checkpoint",
                                         help="Q-Former checkpoint."),
         out: Path = artifact_option("train_adapter", help="Output folder."),
         params: Path = PARAMS_OPTION) -> None:
    """Train every adapter of Table 1 in one batched job."""
    config = load_params(params).train_adapter
    require_inputs(features, clip_dir, qformer)

    import numpy as np
    import pandas as pd
    import torch

    from pipeline.adapter import EarlyStopping, run_rows, save_heads, table1_runs, train_linear_heads

    device = torch.device(resolve_device(config.device, "train_adapter.device"))
    fingerprint, inputs = load_inputs(features, clip_dir, qformer, device, config.normalize,
                                      unmapped="none" in config.text_mapping)
    table, class_ids = inputs.table, inputs.class_ids
    # Without Reed's captions (data.reed: null) the Reed column is not trained.
    sources = ("reed", "llm") if len(table.reed) else ("llm",)
    runs = table1_runs(config.selection, config.seeds, tuple(config.text_mapping), sources)
    stopping = config.early_stopping
    parts = [run_rows(run, table, config.llm_per_image, stopping.val_fraction) for run in runs]
    require_pools(runs, [part.pool for part in parts], len(table.images))
    heads = train_linear_heads(
        inputs.features, inputs.labels, [part.pool for part in parts], len(class_ids),
        steps=config.steps, batch_size=config.batch_size, lr=config.lr,
        weight_decay=config.weight_decay, logit_scale=config.logit_scale,
        seeds=[run.stream_seed for run in runs],
        early_stopping=EarlyStopping([part.val_rows for part in parts], stopping.eval_every,
                                     stopping.patience) if stopping.val_fraction > 0 else None)

    save_heads(out, heads.weight, heads.bias, {
        "runs": [run.name for run in runs], "class_ids": class_ids.tolist(),
        "normalize": config.normalize, "logit_scale": config.logit_scale, "steps": config.steps,
        "steps_run": heads.steps_run, "early_stopping": stopping.model_dump(),
        "clip_fingerprint": fingerprint})
    rows = []
    for h, (run, part) in enumerate(zip(runs, parts)):
        rows.append({"run": run.name, "image_ratio": run.image_ratio, "text_ratio": run.text_ratio,
                     "text_source": run.text_source, "text_mapping": run.text_mapping,
                     "selection": run.selection, "seed": run.seed,
                     "n_images": len(part.kept_ids), "n_texts": len(part.pool) - len(part.kept_ids),
                     "n_val": len(part.val_rows), "best_step": int(heads.best_step[h]),
                     "stop_step": int(heads.stop_step[h]), "val_top1": float(heads.val_top1[h])})
    write_parquet(out / "runs.parquet", pd.DataFrame(rows))
    image_ids = table.images["image_id"].to_numpy()

    def per_run(ids_of) -> pd.DataFrame:  # (run, image_id) rows
        return pd.DataFrame([(run.name, int(i)) for run, part in zip(runs, parts)
                             for i in ids_of(part)], columns=["run", "image_id"])

    write_parquet(out / "kept_images.parquet", per_run(lambda part: part.kept_ids))
    write_parquet(out / "val_images.parquet", per_run(lambda part: image_ids[part.val_rows]))
    print(f"train_adapter: {len(runs)} adapters on {len(table.images)} train images, "
          f"{len(table.reed)} Reed captions, {len(table.llm)} descriptions")
    if stopping.val_fraction > 0:
        print(f"early stopping on {len(parts[0].val_rows)} held-out images per run: best steps "
              f"{heads.best_step.min()}-{heads.best_step.max()} (median "
              f"{int(np.median(heads.best_step))}), {heads.steps_run} of {config.steps} steps run")


def require_inputs(features: Path, clip_dir: Path, qformer: Path) -> None:
    """Stop in one line if an input of the adapters is missing."""
    require(clip_dir, made_by=f"clip@{clip_dir.name}")
    require_features(features, "cub_images", "reed_captions", "descriptions")
    require(qformer, made_by="train_qformer")


def require_pools(runs, pools, images: int) -> None:
    """Stop in one line if a run would train on nothing (10% of a class of 4 images is none)."""
    empty = [run.name for run, pool in zip(runs, pools) if len(pool) == 0]
    if empty:
        raise InputError(f"{len(empty)} run(s) would train on nothing ({', '.join(empty[:5])}): "
                         f"too few training images ({images}) for their image ratio")


def load_inputs(features: Path, clip_dir: Path, qformer: Path, device, normalize: bool,
                unmapped: bool = False):
    """The CLIP's fingerprint and the feature table every adapter trains on (`AdapterInputs`)."""
    from pipeline.adapter import load_adapter_inputs
    from pipeline.clip import fingerprint_of, read_card

    fingerprint = fingerprint_of(read_card(clip_dir))
    return fingerprint, load_adapter_inputs(features, fingerprint, qformer, device, normalize,
                                            unmapped)
