"""`fgvc bench ...`: speed measurements (not a DVC stage). Figures are ratios against baselines
measured in the same run, so they compare across machines; see docs/benchmarks.md."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from pipeline.common import InputError
from stages.common import PARAMS_OPTION, one_line_errors, resolve_device
from stages.layout import artifact_option, clip_option, require, require_data_root
from stages.params import load_params

app = typer.Typer(help="Speed measurements: ratios against baselines measured in the same run.",
                  no_args_is_help=True)


@app.command("extract")
@one_line_errors
def extract(
    images: Path = typer.Option(None, help="A folder of images, searched recursively. Default: "
                                "data.root (the demo world's COCO- and CUB-like images, or your "
                                "datasets)."),
    clip_dir: Path = clip_option(),
    model: str = typer.Option(None, help="An open_clip model name instead of --clip, e.g. "
                              "ViT-B-32 (with --pretrained; downloads weights)."),
    pretrained: str = typer.Option(None, help="open_clip pretrained tag for --model, e.g. openai."),
    limit: int = typer.Option(5000, min=1, help="Use at most this many images."),
    batch_size: int = typer.Option(None, min=1, help="Default: extract.images.batch_size."),
    workers: int = typer.Option(None, min=0, help="Default: extract.images.num_workers."),
    device: str = typer.Option(None, help="cpu | cuda. Default: extract.device."),
    decode: str = typer.Option(None, help="pil | torchvision | nvimgcodec. Default: "
                               "extract.images.decode."),
    processes: int = typer.Option(None, min=1, help="Processes of the bare-PIL bound. Default: "
                                  "one per core."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    params: Path = PARAMS_OPTION,
) -> None:
    """Image extraction throughput on the same files and model: its bounds (bare PIL in every
    core; each device decoder alone, and with our batched resize; the model alone), our input
    side, ours end to end, and a naive loop, with the ratios and peak host memory of each."""
    settings = load_params(params)
    config = settings.extract
    if images is not None and not images.is_dir():
        raise InputError(f"--images: {images} is not a folder")
    images = images or require_data_root(settings.data)
    if not model:
        require(clip_dir, made_by=f"clip@{clip_dir.name}")

    from pipeline.bench import bench_extraction, format_figures, image_files
    from pipeline.clip import create_clip, load_clip
    from pipeline.features import DEVICE_DECODERS, ExtractOptions

    decode = decode or config.images.decode
    if decode not in ("pil", *DEVICE_DECODERS):
        raise InputError(f"--decode: {decode!r} is not one of pil, {', '.join(DEVICE_DECODERS)}")

    device = resolve_device(device or config.device, "--device" if device else "extract.device")
    root, paths = images, image_files(images, limit)
    if not paths:
        raise InputError(f"no images found under {root} (the demo world: `dvc repro demo@world`)")
    if model:
        clip = create_clip(model, pretrained)
        clip.card["weights_sha256"] = None  # not pinned to a file: the bench's features are throwaway
    else:
        clip = load_clip(clip_dir, device)
    options = ExtractOptions(
        batch_size=batch_size or config.images.batch_size,
        num_workers=config.images.num_workers if workers is None else workers, device=device,
        amp=config.amp, precision=config.precision, shard_rows=config.shard_rows,
        max_image_pixels=config.images.max_image_pixels, max_bad_fraction=1.0,
        decode=decode)
    name = model or clip.card["model_name"]
    print(f"bench extract: {len(paths)} images from {root}, {name} on {device}, batch "
          f"{options.batch_size}, {options.num_workers} decode worker(s), decode {options.decode}, "
          f"amp {options.amp if device.startswith('cuda') else 'none'}")
    figures = bench_extraction(clip, root, paths, options, processes)
    print(format_figures(figures, decode))
    if json_out:
        json_out.write_text(json.dumps({
            "images": len(paths), "model": name, "device": device,
            "batch_size": options.batch_size, "workers": options.num_workers, "decode": decode,
            "figures": [dict(f.__dict__, per_second=f.per_second) for f in figures]}, indent=2))


@app.command("adapter")
@one_line_errors
def adapter(
    features: Path = artifact_option("extract", help="Feature sets of `extract`."),
    clip_dir: Path = clip_option(),
    qformer: Path = artifact_option("train_qformer", "checkpoint", help="Q-Former checkpoint."),
    repeats: int = typer.Option(3, min=1, help="Time each way this many times, interleaved, "
                                "and keep the best of each."),
    sample: int = typer.Option(None, min=1, help="Train only this many heads one at a time "
                               "(spread over the grid) and extrapolate to all: keeps the bench "
                               "of a preset-size grid short. Default: every head."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    params: Path = PARAMS_OPTION,
) -> None:
    """The Table-1 adapter grid trained as stacked heads in one job vs one head after another:
    the same heads, timed in one run (train_adapter params, early stopping aside: every head
    trains all `steps`; the demo's artifacts by default)."""
    from stages.train_adapter import load_inputs, require_inputs, require_pools

    config = load_params(params).train_adapter
    require_inputs(features, clip_dir, qformer)

    import torch

    from pipeline.adapter import run_pool, table1_runs
    from pipeline.bench import bench_adapter

    device = torch.device(resolve_device(config.device, "train_adapter.device"))
    _, inputs = load_inputs(features, clip_dir, qformer, device, config.normalize)
    runs = table1_runs(config.selection, config.seeds)
    pools = [run_pool(run, inputs.table, config.llm_per_image)[0] for run in runs]
    require_pools(runs, pools, len(inputs.table.images))
    print(f"bench adapter: {len(runs)} heads on {len(inputs.labels)} training rows, {device}")
    result = bench_adapter(inputs.features, inputs.labels, pools,
                           [run.stream_seed for run in runs], len(inputs.class_ids),
                           repeats=repeats, sample=sample, steps=config.steps,
                           batch_size=config.batch_size,
                           lr=config.lr, weight_decay=config.weight_decay,
                           logit_scale=config.logit_scale)
    print(result.report())
    if json_out:
        json_out.write_text(json.dumps(dict(result.__dict__, speedup=result.speedup,
                                            device=str(device)), indent=2))


@app.command("qformer")
@one_line_errors
def qformer(
    pairs: int = typer.Option(None, min=1, help="Training pairs per timed epoch. Default: 16 "
                              "batches."),
    width: int = typer.Option(512, min=1, help="CLIP feature width (512: ViT-B-32, 768: "
                              "ViT-L-14); the features are random, speed does not depend on them."),
    repeats: int = typer.Option(2, min=1, help="Time each loop this many times, interleaved, "
                                "and keep the best of each (the first pays the warm-up)."),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="Also time the loop with "
                                 "its forward compiled. Default: train_qformer.compile (auto: "
                                 "on CUDA)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    params: Path = PARAMS_OPTION,
) -> None:
    """The Q-Former's training loop (train_qformer params: the model, the batch, the device),
    eager and compiled, against the loop it replaced, on the same random features: pairs/s and
    achieved TFLOP/s. The preset's model: --params presets/cub-paper.yaml."""
    config = load_params(params).train_qformer

    import torch

    from pipeline.bench import bench_qformer
    from pipeline.qformer import QFormerConfig

    device = resolve_device(config.device, "train_qformer.device")
    model = QFormerConfig(text_width=width, image_width=width, **config.model_dump(include={
        "num_queries", "hidden_size", "num_layers", "num_heads", "intermediate_size",
        "cross_attention_frequency", "pooling", "dropout"}))
    pairs = pairs or 16 * config.batch_size
    print(f"bench qformer: {pairs} random pairs of width {width}, {config.num_layers} layers x "
          f"{config.hidden_size}, {config.num_queries} queries, batch {config.batch_size}, "
          f"{device}")
    compile = config.compiles_on(torch.device(device).type) if compile is None else compile
    result = bench_qformer(model, pairs, config.batch_size, device, repeats=repeats,
                           seed=config.seed, compile=compile, **config.model_dump(include={
                               "loss", "margin", "weighting", "temperature", "lr",
                               "weight_decay", "warmup_fraction", "grad_clip"}))
    print(result.report())
    if json_out:
        json_out.write_text(json.dumps(dict(
            dataclasses.asdict(result),
            pairs_per_second={w: result.pairs_per_second(w) for w in result.seconds},
            tflops={w: result.tflops(w) for w in result.seconds}), indent=2))
