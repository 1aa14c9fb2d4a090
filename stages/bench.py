"""`fgvc bench ...`: speed measurements (not a DVC stage). Figures are ratios against baselines
measured in the same run, so they compare across machines; see docs/benchmarks.md."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer

from pipeline.bench import COCO_CAPTIONS, CUB_SIZE
from pipeline.common import InputError
from stages.common import PARAMS_OPTION, chosen_backbone, one_line_errors, resolve_device
from stages.layout import (backbone_option, backbone_path, require, require_data_root,
                           require_features, target_path)
from stages.params import load_params

app = typer.Typer(help="Speed measurements: ratios against baselines measured in the same run.",
                  no_args_is_help=True)


@app.command("extract")
@one_line_errors
def extract(
    images: Path = typer.Option(None, help="A folder of images, searched recursively. Default: "
                                "data.root (the demo world's COCO- and CUB-like images, or your "
                                "datasets)."),
    backbone: str = typer.Option(None, help="The backbone whose CLIP runs. Default: the first "
                                 "of clip.adapter_backbones."),
    clip_dir: Path = backbone_option("clip", help="The resolved CLIP.", flag="--clip",
                                    target=False),
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
    backbone = chosen_backbone(settings.clip, backbone)
    clip_dir = clip_dir or backbone_path("clip", backbone)
    if not model:
        require(clip_dir, made_by=f"clip@{backbone}")

    from pipeline.bench import bench_extraction, format_figures, image_files
    from pipeline.clip import create_clip, load_clip
    from pipeline.features import DEVICE_DECODERS

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
    run = config.model_copy(update={"images": config.images.model_copy(update={
        "batch_size": batch_size or config.images.batch_size, "max_bad_fraction": 1.0,
        "num_workers": config.images.num_workers if workers is None else workers,
        "decode": decode})})
    name = model or clip.card["model_name"]
    print(f"bench extract: {len(paths)} images from {root}, {name} on {device}, batch "
          f"{run.images.batch_size}, {run.images.num_workers} decode worker(s), decode "
          f"{run.images.decode}, amp {run.amp if device.startswith('cuda') else 'none'}")
    figures = bench_extraction(clip, root, paths, run, device, processes)
    print(format_figures(figures, decode))
    if json_out:
        json_out.write_text(json.dumps({
            "images": len(paths), "model": name, "device": device,
            "batch_size": run.images.batch_size, "workers": run.images.num_workers,
            "decode": decode,
            "figures": [dict(f.__dict__, per_second=f.per_second) for f in figures]}, indent=2))


@app.command("adapter")
@one_line_errors
def adapter(
    backbone: str = typer.Option(None, help="The backbone whose features train the grid. "
                                 "Default: the first of clip.adapter_backbones."),
    repeats: int = typer.Option(3, min=1, help="Time each way this many times, interleaved, "
                                "and keep the best of each."),
    sample: int = typer.Option(None, min=1, help="Train only this many heads one at a time "
                               "(spread over the grid) and extrapolate to all: keeps the bench "
                               "of a preset-size grid short. Default: every head."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    params: Path = PARAMS_OPTION,
) -> None:
    """The Table-1 grid of the linear adapter trained as stacked heads in one job vs one head
    after another: the same heads, timed in one run (train_adapter params, early stopping aside:
    every head trains all `steps`; the demo's artifacts by default)."""
    settings = load_params(params).for_target(None)
    target, backbone = settings.target, chosen_backbone(settings.clip, backbone)
    clip_dir = require(backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    features = target_path("extract", target, backbone)
    require_features(features, backbone, "target_images", "target_captions", "descriptions",
                     target=target)
    qformer = require(backbone_path("train_qformer", backbone, "checkpoint"),
                      made_by=f"train_qformer@{backbone}")
    config = settings.train_adapter
    if "linear" not in config.methods:
        raise InputError("fgvc bench adapter times the linear grid: train_adapter.methods has "
                         "no linear entry")

    import torch

    from pipeline.adapter import load_adapter_inputs
    from pipeline.bench import bench_grid
    from pipeline.clip import fingerprint_of, read_card

    device = torch.device(resolve_device(config.device, "train_adapter.device"))
    inputs = load_adapter_inputs(features, config.descriptions, fingerprint_of(read_card(clip_dir)),
                                 qformer, device)
    print(f"bench adapter: {backbone}, {len(inputs.labels)} training rows, {device}")
    result = bench_grid(inputs, config, config.methods["linear"], repeats=repeats, sample=sample)
    print(result.report())
    if json_out:
        json_out.write_text(json.dumps(dict(result.__dict__, speedup=result.speedup,
                                            device=str(device)), indent=2))


@app.command("few_shot")
@one_line_errors
def few_shot(
    methods: Optional[list[str]] = typer.Argument(
        None, help="The methods to time, keys of train_adapter.methods. Default: every "
        "few-shot method there."),
    train: int = typer.Option(CUB_SIZE["train"], min=2, help="Train images (CUB's: 5,994)."),
    classes: int = typer.Option(CUB_SIZE["classes"], min=2, help="Classes (CUB's: 200)."),
    width: int = typer.Option(CUB_SIZE["width"], min=1, help="Feature width (768: ViT-B)."),
    descriptions: int = typer.Option(10, min=1, help="Descriptions per class (the prior)."),
    seed: int = typer.Option(0, help="Seed of the random table."),
    cpu_threads: int = typer.Option(None, "--cpu-threads", min=0, help="Instead of "
                                    "train_adapter.cpu_threads: budgets trained at once on the "
                                    "CPU, one torch thread each (0: one per core)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
    params: Path = PARAMS_OPTION,
) -> None:
    """Every few-shot method of train_adapter.methods over every budget of
    train_adapter.budgets (with their seeds) on a random class-structured table of CUB's size,
    each method timed beside a baseline measured in the same run (one L-BFGS probe on every
    train image). train_adapter.cpu_threads and train_adapter.device apply, as in the stage."""
    config = load_params(params).train_adapter
    if cpu_threads is not None:
        config = config.model_copy(update={"cpu_threads": cpu_threads})

    import torch

    from pipeline.bench import bench_few_shot

    device = resolve_device(config.device, "train_adapter.device")
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    print(f"bench few_shot: methods {', '.join(methods or config.methods)}")
    result = bench_few_shot(config, train=train, classes=classes, width=width,
                            descriptions_per_class=descriptions, seed=seed, device=device,
                            methods=methods or None)
    print(result.report())
    if json_out:
        json_out.write_text(json.dumps(result.as_json(), indent=2))


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
    achieved TFLOP/s. The paper's model: `fgvc preset cub-paper --out paper.yaml`, then --params paper.yaml."""
    config = load_params(params).train_qformer

    import torch

    from pipeline.bench import bench_qformer

    device = resolve_device(config.device, "train_qformer.device")
    pairs = pairs or 16 * config.batch_size
    print(f"bench qformer: {pairs} random pairs of width {width}, {config.model.num_layers} layers"
          f" x {config.model.hidden_size}, {config.model.num_queries} queries, batch "
          f"{config.batch_size}, {device}")
    compile = config.compiles_on(torch.device(device).type) if compile is None else compile
    result = bench_qformer(config, width, pairs, device, repeats=repeats, compile=compile)
    print(result.report())
    if json_out:
        json_out.write_text(json.dumps(dict(
            dataclasses.asdict(result),
            pairs_per_second={w: result.pairs_per_second(w) for w in result.seconds},
            tflops={w: result.tflops(w) for w in result.seconds}), indent=2))


@app.command("read")
@one_line_errors
def read(
    rows: int = typer.Option(COCO_CAPTIONS["rows"], min=1, help="Rows of the random set (COCO's "
                             "captions: 113,287 images x 5 = 566,435)."),
    width: int = typer.Option(COCO_CAPTIONS["width"], min=1, help="Embedding width (512: "
                              "ViT-B-32)."),
    shard_rows: int = typer.Option(COCO_CAPTIONS["shard_rows"], min=1, help="Rows per shard "
                                   "(the cub-paper preset's extract.shard_rows)."),
    precision: str = typer.Option("float16", help="float16 | float32, as extract.precision."),
    repeats: int = typer.Option(5, min=1, help="Read this many times each way, interleaved; "
                                "the best and the median of each are reported."),
    seed: int = typer.Option(0, help="Seed of the random embeddings."),
    workdir: Path = typer.Option(None, "--dir", help="Write the set under this folder (it needs "
                                 "the set's size free; removed after). Default: the system's "
                                 "temporary folder."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
) -> None:
    """What verifying shard checksums costs a reader: `read_feature_set` as every stage calls it
    (each shard hashed as it is read) against the same read unverified, on a random set of
    COCO captions' size written by the store's writer, timed in one run."""
    from pipeline.bench import bench_read

    if workdir is not None and not workdir.is_dir():
        raise InputError(f"--dir: {workdir} is not a folder")
    print(f"bench read: {rows:,} random rows x width {width} ({precision}), shards of "
          f"{shard_rows:,} rows, {repeats} read(s) each way")
    result = bench_read(rows=rows, width=width, shard_rows=shard_rows, precision=precision,
                        repeats=repeats, seed=seed, workdir=workdir)
    print(result.report())
    if json_out:
        json_out.write_text(json.dumps(result.as_json(), indent=2))
