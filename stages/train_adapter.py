"""Stage `train_adapter`: the Table 1 grid of adapters (image ratio x text source x selection
x seed), trained together as stacked linear heads on cached features.

Outputs in <out>: heads.safetensors (weight (H, C, D), bias (H, C)), heads.json (run order,
class ids, feature settings, CLIP fingerprint), runs.parquet (one row per run with its pool
sizes) and kept_images.parquet (run, image_id: which images each run kept, for audit).
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, params_or_exit, resolve_device, write_json, write_parquet


def main(features: Path = typer.Option(Path("artifacts/extract"), help="Feature sets of `extract`."),
         clip_dir: Path = typer.Option(Path("artifacts/clip"), "--clip", help="The resolved CLIP."),
         qformer: Path = typer.Option(Path("artifacts/train_qformer"), help="Q-Former checkpoint."),
         out: Path = typer.Option(Path("artifacts/train_adapter"), help="Output folder."),
         params: Path = PARAMS_OPTION) -> None:
    """Train every adapter of Table 1 in one batched job."""
    import pandas as pd
    import torch
    from safetensors.torch import save_file

    from pipeline.adapter import train_linear_heads
    from pipeline.adapter_inputs import load_adapter_inputs
    from pipeline.clip import fingerprint_of, read_card
    from pipeline.training_mix import run_pool, table1_runs

    config = params_or_exit(params).train_adapter
    device = torch.device(resolve_device(config.device))
    fingerprint = fingerprint_of(read_card(clip_dir))
    inputs = load_adapter_inputs(features, fingerprint, qformer, device, config.normalize)
    table, class_ids = inputs.table, inputs.class_ids
    runs = table1_runs(config.selection, config.seeds)
    pools, kept = zip(*(run_pool(run, table, config.llm_per_image) for run in runs))
    weight, bias = train_linear_heads(
        inputs.features, inputs.labels, pools, len(class_ids),
        steps=config.steps, batch_size=config.batch_size, lr=config.lr,
        weight_decay=config.weight_decay, logit_scale=config.logit_scale,
        seeds=[run.stream_seed for run in runs])

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "heads.safetensors.tmp"
    save_file({"weight": weight.cpu().contiguous(), "bias": bias.cpu().contiguous()}, str(tmp))
    tmp.replace(out / "heads.safetensors")
    write_json({"runs": [run.name for run in runs], "class_ids": class_ids.tolist(),
                "normalize": config.normalize, "logit_scale": config.logit_scale,
                "clip_fingerprint": fingerprint}, out / "heads.json")
    rows = []
    for run, pool, kept_ids in zip(runs, pools, kept):
        rows.append({"run": run.name, "image_ratio": run.image_ratio, "text_ratio": run.text_ratio,
                     "text_source": run.text_source, "selection": run.selection, "seed": run.seed,
                     "n_images": len(kept_ids), "n_texts": len(pool) - len(kept_ids)})
    write_parquet(pd.DataFrame(rows), out / "runs.parquet")
    write_parquet(pd.DataFrame([(run.name, int(i)) for run, ids in zip(runs, kept) for i in ids],
                               columns=["run", "image_id"]), out / "kept_images.parquet")
    print(f"train_adapter: {len(runs)} adapters on {len(table.images)} train images, "
          f"{len(table.reed)} Reed captions, {len(table.llm)} descriptions")
