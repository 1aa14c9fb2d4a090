"""How fast is image extraction, and what bounds it? Figures on the same files and model:

    pil-bound   bare PIL (open, decode, resize, crop) in one process per core: what the CPUs
                can decode, with nothing of ours around it
    <dec>-bound a device decoder (torchvision, nvimgcodec) decoding lists of a batch's bytes
                already in memory, alone; <dec>+resize adds our batched resize: what the
                device can decode
    decode      our DataLoader workers + the device-side finish, no model: our input side
    model       the encoder on pre-decoded tensors, no input: the compute bound
    ours        `extract_image_features` end to end (decode || encode, shards, manifest)
    naive       PIL open + open_clip preprocess + encode, batch by batch, in one process

End to end should approach the smaller of the input bound (pil-bound, or the decoder's
+resize bound) and model; `naive` is what a first script does. Memory per phase: this process's
peak RSS, and the peak PSS of this process with all the processes it started (workers, pool).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from pipeline.bench.memory import TreeMemorySampler, peak_rss_mib, reset_peak_rss
from pipeline.clip.base import Clip
from pipeline.common import InputError
from pipeline.features.decoding import load_rgb
from pipeline.features.device_decoding import device_decoder
from pipeline.features.encoding import ImageEncoder
from pipeline.features.images import (BatchFinisher, device_decodable_jpeg,
                                      extract_image_features, image_loader)
from pipeline.features.preprocessing import DevicePreprocess, split_preprocess
from pipeline.features.settings import ExtractSettings

MODEL_ONLY_CACHED_BATCHES = 8  # pre-decoded batches the model phase cycles through (bounded RAM)


@dataclasses.dataclass
class Figure:
    name: str
    images: int
    seconds: float
    peak_rss_mib: float  # this process
    peak_tree_mib: float  # this process and its children, PSS

    @property
    def per_second(self) -> float:
        return self.images / self.seconds if self.seconds else float("inf")


def measure(name: str, images: int, run: Callable[[], object]) -> Figure:
    reset_peak_rss()
    with TreeMemorySampler() as tree:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    return Figure(name, images, seconds, peak_rss_mib(), tree.peak_mib)


def image_files(folder: Path, limit: int | None = None) -> list[str]:
    """Image paths under `folder` (relative to it), sorted, at most `limit`."""
    suffixes = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    paths = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*")
                   if p.suffix.lower() in suffixes)
    return paths[:limit] if limit else paths


def device_decoders(device: str) -> list[str]:
    """The device decoders that can run here: torchvision always; nvImageCodec on CUDA, when
    installed."""
    names = ["torchvision"]
    if torch.device(device).type == "cuda" and importlib.util.find_spec("nvidia.nvimgcodec"):
        names.append("nvimgcodec")
    return names


class _PilWork:
    """What one bare-PIL process does per file (picklable for the pool)."""

    def __init__(self, root: Path, to_pixels, max_pixels: int):
        self.root, self.to_pixels, self.max_pixels = root, to_pixels, max_pixels

    def __call__(self, path: str) -> None:
        try:
            self.to_pixels(load_rgb(self.root / path, self.max_pixels))
        except ValueError:
            pass  # a bad file costs what it costs; the bound only times the work


def bench_extraction(clip: Clip, root: Path, paths: list[str], settings: ExtractSettings,
                     device: str, processes: int | None = None) -> list[Figure]:
    """Measure the figures (see module doc) over `paths` under `root`, with the extract settings
    (batch size, workers, decoder) on `device`; the PIL bound runs `processes` processes
    (default: one per core)."""
    root, count, batch_size = Path(root), len(paths), settings.images.batch_size
    batches = [list(range(s, min(s + batch_size, count))) for s in range(0, count, batch_size)]
    figures = [_pil_bound(clip, root, paths, settings, processes or os.cpu_count() or 1)]
    if settings.images.decode != "pil" or torch.device(device).type == "cuda":
        figures += _decoder_bounds(clip, root, paths, batches, settings, device)

    finish = BatchFinisher(clip, root, paths, settings, device)
    encode = ImageEncoder(clip.model, device, settings.amp)
    cached = [finish(loaded)[1] for loaded in
              itertools.islice(image_loader(clip, root, paths, batches, settings, device,
                                            num_workers=0), MODEL_ONLY_CACHED_BATCHES)]
    cached = [pixels for pixels in cached if pixels is not None]
    if not cached:
        raise InputError(f"none of the first {MODEL_ONLY_CACHED_BATCHES} batches under {root} "
                         "holds a decodable image")
    encode(cached[0])  # warm-up: kernels, allocator, autotuning

    def decode_only():
        pixels = None
        for loaded in image_loader(clip, root, paths, batches, settings, device):
            pixels = finish(loaded)[1]
        _synchronize(pixels)

    def model_only():
        for i in range(len(batches)):
            encode(cached[i % len(cached)])

    workdir = Path(tempfile.mkdtemp(prefix="fgvc-bench-"))
    index = pd.DataFrame({"image_id": range(count), "path": paths})

    def ours():
        extract_image_features(clip, root, index, workdir / "features", name="bench",
                               id_columns=["image_id"], settings=settings, device=device,
                               progress=False)

    @torch.inference_mode()
    def naive():
        for batch in batches:
            pixels = []
            for row in batch:
                with Image.open(root / paths[row]) as image:
                    pixels.append(clip.preprocess(image.convert("RGB")))
            clip.model.encode_image(torch.stack(pixels).to(device)).cpu()

    try:
        return figures + [measure("decode", count, decode_only),
                          measure("model", count, model_only),
                          measure("ours", count, ours), measure("naive", count, naive)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _synchronize(pixels) -> None:
    if pixels is not None and pixels.is_cuda:
        torch.cuda.synchronize(pixels.device)


def _pil_bound(clip: Clip, root: Path, paths: list[str], settings: ExtractSettings,
               processes: int) -> Figure:
    to_pixels, _ = split_preprocess(clip.preprocess)
    work = _PilWork(root, to_pixels, settings.images.max_image_pixels)
    # Not forked: this process may hold a CUDA context by now.
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    with context.Pool(processes) as pool:
        pool.map(work, paths[:processes], chunksize=1)  # started and imported before the clock
        chunk = max(1, len(paths) // (processes * 8))
        return measure(f"pil-bound({processes})", len(paths),
                       lambda: pool.map(work, paths, chunksize=chunk))


def _decoder_bounds(clip: Clip, root: Path, paths: list[str], batches: list[list[int]],
                    settings: ExtractSettings, device: str) -> list[Figure]:
    """Each device decoder on the batches' JPEG bytes, read beforehand: alone, and with our
    batched resize. Only the files ours decodes on the device count (it sends the rest, CMYK,
    grayscale, cut short or huge, through PIL)."""
    data = [device_decodable_jpeg(root / path, settings.images.max_image_pixels) for path in paths]
    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in data if b is not None]
    if not tensors:
        return []
    size = settings.images.batch_size
    lists = [tensors[s:s + size] for s in range(0, len(tensors), size)]
    prepare = DevicePreprocess(clip.card["preprocess"], device)
    figures = []
    for name in device_decoders(device):
        decode = device_decoder(name, device)
        decode(lists[0])  # warm-up: the codec's state, allocator

        def decode_only():
            for batch in lists:
                images = decode(batch)
            _synchronize(next((image for image in images if image is not None), None))

        def decode_and_resize():
            for batch in lists:
                pixels = prepare([image for image in decode(batch) if image is not None])
            _synchronize(pixels)

        figures += [measure(f"{name}-bound", len(tensors), decode_only),
                    measure(f"{name}+resize", len(tensors), decode_and_resize)]
    return figures


def format_figures(figures: list[Figure], decode: str = "pil") -> str:
    """The table and the ratios that matter for the run's decoder (`extract.images.decode`)."""
    by_name = {f.name: f for f in figures}
    lines = [f"{'phase':<19} {'images':>7} {'seconds':>8} {'images/s':>10} "
             f"{'peak RSS MiB':>13} {'+children PSS':>14}"]
    lines += [f"{f.name:<19} {f.images:>7} {f.seconds:>8.2f} {f.per_second:>10.1f} "
              f"{f.peak_rss_mib:>13.0f} {f.peak_tree_mib:>14.0f}" for f in figures]
    ours = by_name["ours"].per_second
    input_bound = (next(f for f in figures if f.name.startswith("pil-bound")) if decode == "pil"
                   else by_name.get(f"{decode}+resize"))
    lines += ["",
              f"ours / model-only         = {ours / by_name['model'].per_second:.2f}",
              f"ours / decode-only        = {ours / by_name['decode'].per_second:.2f}"]
    if input_bound is not None:
        bound = min(input_bound.per_second, by_name["model"].per_second)
        lines += [f"ours / {input_bound.name:<18} = {ours / input_bound.per_second:.2f}",
                  f"ours / min(that, model)   = {ours / bound:.2f}"]
    lines += [f"ours / naive              = {ours / by_name['naive'].per_second:.2f}"]
    return "\n".join(lines)
