"""How fast is image extraction, and what bounds it? Four figures on the same files and model:

    decode      DataLoader workers decode + preprocess (or read bytes for the device to decode,
                with decode "torchvision"), no model: the input bound
    model       the encoder on pre-decoded tensors, no input: the compute bound
    ours        `extract_image_features` end to end (decode || encode, shards, manifest)
    naive       PIL open + open_clip preprocess + encode, batch by batch, in one process

End to end should approach min(decode, model); `naive` is what a first script does.
Peak resident memory (this process) is taken per phase.
"""

from __future__ import annotations

import dataclasses
import itertools
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from pipeline.clip.loading import Clip
from pipeline.features.encoding import ExtractOptions, ImageEncoder
from pipeline.features.images import BatchFinisher, extract_image_features, image_loader

MODEL_ONLY_CACHED_BATCHES = 8  # pre-decoded batches the model phase cycles through (bounded RAM)


@dataclasses.dataclass
class Figure:
    name: str
    images: int
    seconds: float
    peak_rss_mib: float

    @property
    def per_second(self) -> float:
        return self.images / self.seconds if self.seconds else float("inf")


def _reset_peak_rss() -> bool:
    """Linux: zero this process's peak-RSS counter, so each phase reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # lifetime peak


def measure(name: str, images: int, run: Callable[[], object]) -> Figure:
    _reset_peak_rss()
    start = time.perf_counter()
    run()
    return Figure(name, images, time.perf_counter() - start, _peak_rss_mib())


def image_files(folder: Path, limit: int | None = None) -> list[str]:
    """Image paths under `folder` (relative to it), sorted, at most `limit`."""
    suffixes = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    paths = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*")
                   if p.suffix.lower() in suffixes)
    return paths[:limit] if limit else paths


def bench_extraction(clip: Clip, root: Path, paths: list[str],
                     options: ExtractOptions) -> list[Figure]:
    """Measure the four figures (see module doc) over `paths` under `root`."""
    root, count = Path(root), len(paths)
    batches = [list(range(s, min(s + options.batch_size, count)))
               for s in range(0, count, options.batch_size)]

    finish = BatchFinisher(clip, root, paths, options)
    encode = ImageEncoder(clip.model, options.device, options.amp)
    cached = [finish(loaded)[1] for loaded in
              itertools.islice(image_loader(clip, root, paths, batches, options, num_workers=0),
                               MODEL_ONLY_CACHED_BATCHES)]
    cached = [pixels for pixels in cached if pixels is not None]
    encode(cached[0])  # warm-up: kernels, allocator, autotuning

    def decode_only():
        for loaded in image_loader(clip, root, paths, batches, options):
            pixels = finish(loaded)[1]
        if pixels is not None and pixels.is_cuda:
            torch.cuda.synchronize()

    def model_only():
        for i in range(len(batches)):
            encode(cached[i % len(cached)])

    workdir = Path(tempfile.mkdtemp(prefix="fgvc-bench-"))
    index = pd.DataFrame({"image_id": range(count), "path": paths})

    def ours():
        extract_image_features(clip, root, index, workdir / "features", name="bench",
                               id_columns=["image_id"], options=options, progress=False)

    @torch.inference_mode()
    def naive():
        for batch in batches:
            pixels = []
            for row in batch:
                with Image.open(root / paths[row]) as image:
                    pixels.append(clip.preprocess(image.convert("RGB")))
            clip.model.encode_image(torch.stack(pixels).to(options.device)).cpu()

    try:
        return [measure("decode", count, decode_only), measure("model", count, model_only),
                measure("ours", count, ours), measure("naive", count, naive)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def format_figures(figures: list[Figure]) -> str:
    by_name = {f.name: f for f in figures}
    lines = [f"{'phase':<8} {'images':>7} {'seconds':>8} {'images/s':>10} {'peak RSS MiB':>13}"]
    lines += [f"{f.name:<8} {f.images:>7} {f.seconds:>8.2f} {f.per_second:>10.1f} "
              f"{f.peak_rss_mib:>13.0f}" for f in figures]
    ours = by_name["ours"].per_second
    bound = min(by_name["decode"].per_second, by_name["model"].per_second)
    lines += ["",
              f"ours / model-only      = {ours / by_name['model'].per_second:.2f}",
              f"ours / decode-only     = {ours / by_name['decode'].per_second:.2f}",
              f"ours / min(decode, model) = {ours / bound:.2f}",
              f"ours / naive           = {ours / by_name['naive'].per_second:.2f}"]
    return "\n".join(lines)
