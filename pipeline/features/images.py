"""Encode image files with a frozen CLIP into a resumable feature set (see `store`).

The work is cut into the feature set's shards. Shards that a previous (killed) run finished are
kept; the rest are computed and each is written the moment its last row is encoded, so a kill
loses at most the shards in flight. Batches never straddle a shard, so a shard's embeddings do
not depend on which other shards were still pending: a resumed run writes the same bytes as an
uninterrupted one.

Images are decoded, resized and cropped by DataLoader workers, which ship 8-bit pixels (pinned
memory, prefetch within a fixed memory budget) while the model encodes earlier batches; the
batch is normalised on the model's device (`preprocessing`). With a device decoder, workers
only read JPEG bytes and the batch is decoded and resized on the device (`device_decoding`).
On CUDA the model runs under autocast, channels-last. Bad images
are skipped with a reason (see `decoding`) and listed in the manifest. Text sets are encoded
by `texts`.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.clip.base import Clip
from pipeline.clip.loading import input_size
from pipeline.common import InputError, write_text
from pipeline.features.decoding import BadImage, load_rgb
from pipeline.features.device_decoding import DEVICE_DECODERS, JPEG_END, device_decoder, is_jpeg
from pipeline.features.encoding import ExtractResult, ImageEncoder, compute_variant
from pipeline.features.preprocessing import DevicePreprocess, split_preprocess
from pipeline.features.settings import ExtractSettings
from pipeline.features.store import ShardInfo, ShardPlan, resume, write_manifest, write_shard

ERRORS_FILE = "errors.json"
IN_FLIGHT_BYTES = 1 << 30  # pixels all workers prefetch together, aimed at (>= 1 batch each)

# A batch of encoded rows: input row numbers, their (n, D) float32 embeddings, and the rows that
# were skipped as (row, reason).
Batch = tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]


class TooManyBadImages(InputError):
    """More images than allowed could not be decoded; the feature set is left unfinished."""


# --- the data side ------------------------------------------------------------------------------

class LoadedBatch(NamedTuple):
    """What the DataLoader workers hand over for one batch of rows."""

    rows: np.ndarray  # rows whose pixels are ready, in the order of `pixels`
    pixels: torch.Tensor | None  # (B, 3, H, W) uint8, resized and cropped on CPU
    bad: list[tuple[int, str]]  # (row, reason) of files that cannot be decoded
    jpeg_rows: list[int]  # device decoding: rows left to decode on the device ...
    jpeg_bytes: torch.Tensor | None  # ... their files' bytes end to end (1-D uint8: one block
    jpeg_sizes: list[int]  # of shared memory per batch, not one per file) and each file's size

    def jpegs(self) -> list[torch.Tensor]:
        """Each file's bytes, a view into `jpeg_bytes`."""
        return list(torch.split(self.jpeg_bytes, self.jpeg_sizes)) if self.jpeg_sizes else []


class ImageRows(Dataset):
    """Item `row` -> (row, uint8 pixels, reason skipped, JPEG bytes); one of the last three is
    set. `to_pixels` turns an RGB PIL image into the model's (3, H, W) uint8 input. With
    `raw_jpeg`, JPEGs of sane size come back as bytes for the device to decode."""

    def __init__(self, root: Path, paths: list[str], to_pixels, max_pixels: int,
                 raw_jpeg: bool = False):
        self.root, self.paths, self.to_pixels = Path(root), paths, to_pixels
        self.max_pixels, self.raw_jpeg = max_pixels, raw_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, row: int):
        path = self.root / self.paths[row]
        if self.raw_jpeg:
            data = device_decodable_jpeg(path, self.max_pixels)
            if data is not None:
                return row, None, None, data
        pixels, reason = preprocess_file(path, self.to_pixels, self.max_pixels)
        return row, pixels, reason, None


def preprocess_file(path: Path, to_pixels, max_pixels: int) -> tuple[torch.Tensor | None,
                                                                     str | None]:
    """(the file's (3, H, W) pixels, None), or (None, the reason the file cannot be used)."""
    try:
        return to_pixels(load_rgb(path, max_pixels)), None
    except BadImage as error:
        return None, error.reason


def device_decodable_jpeg(path: Path, max_pixels: int) -> bytes | None:
    """The file's bytes if it is a complete 3-channel JPEG within `max_pixels` (header checks
    only), else None: CMYK, grayscale, truncated and huge JPEGs go through PIL, which converts
    them or names what is wrong, rather than trusting the device decoder with them."""
    try:
        data = path.read_bytes()
        if not is_jpeg(data) or not data.rstrip(b"\0").endswith(JPEG_END):
            return None
        with Image.open(io.BytesIO(data)) as image:
            fits = image.size[0] * image.size[1] <= max_pixels
            return data if fits and image.mode in ("RGB", "YCbCr") else None
    except (OSError, ValueError):
        return None


def collate_images(items) -> LoadedBatch:
    ready = [(row, pixels) for row, pixels, _, _ in items if pixels is not None]
    jpegs = [jpeg for _, _, _, jpeg in items if jpeg is not None]
    return LoadedBatch(
        rows=np.array([row for row, _ in ready], dtype=np.int64),
        pixels=torch.stack([p for _, p in ready]) if ready else None,
        bad=[(row, reason) for row, _, reason, _ in items if reason is not None],
        jpeg_rows=[row for row, _, _, jpeg in items if jpeg is not None],
        jpeg_bytes=(torch.frombuffer(bytearray().join(jpegs), dtype=torch.uint8)
                    if jpegs else None),
        jpeg_sizes=[len(jpeg) for jpeg in jpegs])


def image_loader(clip: Clip, root: Path, paths: list[str], batches: list[list[int]],
                 settings: ExtractSettings, device: str,
                 num_workers: int | None = None) -> DataLoader:
    """Batches of `LoadedBatch` from `num_workers` processes (default: the settings'), each
    prefetching two batches, or one where two per worker would pass `IN_FLIGHT_BYTES` of pixels
    (so many workers with big batches still hold one batch each: workers x batch bytes)."""
    images = settings.images
    workers = images.num_workers if num_workers is None else num_workers
    to_pixels, _ = split_preprocess(clip.preprocess)
    device_decoding = images.decode in DEVICE_DECODERS
    dataset = ImageRows(root, paths, to_pixels, images.max_image_pixels, raw_jpeg=device_decoding)
    batch_bytes = images.batch_size * 3 * int(np.prod(input_size(clip.card["preprocess"])))
    prefetch = max(1, min(2, IN_FLIGHT_BYTES // max(1, workers * batch_bytes)))
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                      collate_fn=collate_images, pin_memory=str(device).startswith("cuda"),
                      prefetch_factor=prefetch if workers else None)


class BatchFinisher:
    """Turns a `LoadedBatch` into (rows, normalised pixels on the device, bad rows). With a
    device decoder it decodes the JPEG bytes and resizes them there; what the device cannot
    decode goes through PIL."""

    def __init__(self, clip: Clip, root: Path, paths: list[str], settings: ExtractSettings,
                 device: str):
        self.device = torch.device(device)
        to_pixels, self.normalize = split_preprocess(clip.preprocess)
        self.fallback = ImageRows(root, paths, to_pixels, settings.images.max_image_pixels)
        self.decode = self.prepare = None
        if settings.images.decode in DEVICE_DECODERS:
            self.decode = device_decoder(settings.images.decode, self.device)
            self.prepare = DevicePreprocess(clip.card["preprocess"], self.device)

    def __call__(self, batch: LoadedBatch) -> tuple[np.ndarray, torch.Tensor | None,
                                                     list[tuple[int, str]]]:
        rows, bad, host_pixels = list(batch.rows), list(batch.bad), []
        if batch.pixels is not None:
            host_pixels.append(batch.pixels)
        decoded_rows, decoded = [], []
        if batch.jpeg_sizes:
            for row, image in zip(batch.jpeg_rows, self.decode(batch.jpegs())):
                if image is not None:
                    decoded_rows.append(row)
                    decoded.append(image)
                    continue
                _, pixels, reason, _ = self.fallback[row]
                if reason is not None:
                    bad.append((row, reason))
                else:
                    rows.append(row)
                    host_pixels.append(pixels[None])
        pixels = []
        if host_pixels:  # one tensor as it came: pinned, so the copy overlaps
            host = host_pixels[0] if len(host_pixels) == 1 else torch.cat(host_pixels)
            pixels.append(self.normalize(host.to(self.device, non_blocking=True)))
        if decoded:
            rows += decoded_rows
            pixels.append(self.prepare(decoded))
        return (np.array(rows, dtype=np.int64), torch.cat(pixels) if pixels else None, bad)


def shard_batches(plan: ShardPlan, shards: Iterable[int], batch_size: int) -> list[list[int]]:
    """Row batches of the given shards; no batch straddles two shards."""
    batches = []
    for index in shards:
        start, stop = plan.span(index)
        batches += [list(range(s, min(s + batch_size, stop))) for s in range(start, stop, batch_size)]
    return batches


def image_inputs(root: Path, index: pd.DataFrame,
                 id_columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What an image row's embedding depends on: its ids, path and file size (-1 for a missing
    file); and, known only on this machine, the file's modification time, so that a replaced or
    repaired image is encoded again on resume."""
    sizes, mtimes = [], []
    for path in index["path"]:
        try:
            stat = os.stat(Path(root) / path)
            sizes.append(stat.st_size)
            mtimes.append(stat.st_mtime_ns)
        except OSError:
            sizes.append(-1)
            mtimes.append(-1)
    inputs = index[id_columns + ["path"]].reset_index(drop=True).assign(size=sizes)
    return inputs, pd.DataFrame({"mtime_ns": mtimes})


def local_image_batches(clip: Clip, root: Path, paths: list[str], batches: list[list[int]],
                        settings: ExtractSettings, device: str) -> Iterator[Batch]:
    """The in-process engine: DataLoader workers decode (or read JPEG bytes for the device to
    decode), this process encodes."""
    finish = BatchFinisher(clip, root, paths, settings, device)
    encode = ImageEncoder(clip.model, device, settings.amp)
    for loaded in image_loader(clip, root, paths, batches, settings, device):
        rows, pixels, bad = finish(loaded)
        embeddings = (encode(pixels) if pixels is not None
                      else np.zeros((0, clip.card["embed_dim"]), np.float32))
        yield rows, embeddings, bad


# --- assembling shards --------------------------------------------------------------------------

class ShardAssembler:
    """Collects encoded rows in any order and writes each shard the moment it is complete."""

    def __init__(self, folder: Path, plan: ShardPlan, ids: pd.DataFrame, pending: Iterable[int]):
        self.folder, self.plan, self.ids = Path(folder), plan, ids.reset_index(drop=True)
        self.missing = {index: plan.span_rows(index) for index in pending}
        self.parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        self.errors: dict[int, list[dict]] = defaultdict(list)
        self.written: dict[int, ShardInfo] = {}

    def add(self, rows: np.ndarray, embeddings: np.ndarray,
            bad: Iterable[tuple[int, str]] = ()) -> None:
        shard_of = np.asarray(rows, dtype=np.int64) // self.plan.shard_rows
        for index in np.unique(shard_of):
            take = shard_of == index
            self.parts[int(index)].append((np.asarray(rows)[take], embeddings[take]))
            self._count(int(index), int(take.sum()))
        for row, reason in bad:
            index = row // self.plan.shard_rows
            self.errors[index].append({"row": int(row), "reason": reason})
            self._count(index, 1)

    def _count(self, index: int, rows: int) -> None:
        if index not in self.missing:
            raise ValueError(f"rows of shard {index}, which is not pending, were encoded")
        self.missing[index] -= rows
        if self.missing[index] < 0:
            raise ValueError(f"shard {index} received more rows than it spans")
        if self.missing[index] == 0:
            self._write(index)

    def _write(self, index: int) -> None:
        parts = self.parts.pop(index, [])
        rows = np.concatenate([r for r, _ in parts]) if parts else np.zeros(0, np.int64)
        embeddings = (np.concatenate([e for _, e in parts]) if parts
                      else np.zeros((0, self.plan.width), np.float32))
        order = np.argsort(rows, kind="stable")
        self.written[index] = write_shard(self.folder, self.plan, index,
                                          self.ids.iloc[rows[order]], embeddings[order],
                                          self.errors.pop(index, []))
        del self.missing[index]

    def unfinished(self) -> list[int]:
        return sorted(self.missing)


# --- image feature sets ---------------------------------------------------------------

# (clip, root, paths, row batches, settings, device) -> encoded batches
ImageEngine = Callable[[Clip, Path, list[str], list[list[int]], ExtractSettings, str],
                       Iterable[Batch]]


def extract_image_features(clip: Clip, root: Path, index: pd.DataFrame, out: Path, *, name: str,
                           id_columns: list[str], settings: ExtractSettings, device: str,
                           engine: ImageEngine = local_image_batches,
                           progress: bool = True) -> ExtractResult:
    """Encode every image of `index` (a `path` column relative to `root`) into feature set `out`,
    resuming whatever a previous run of the same plan finished."""
    index = index.reset_index(drop=True)
    inputs, local = image_inputs(root, index, id_columns)
    plan = ShardPlan.build(inputs, name=name, fingerprint=clip.fingerprint,
                           width=clip.card["embed_dim"], precision=settings.precision,
                           shard_rows=settings.shard_rows, local=local,
                           variant=image_variant(settings, device))
    resumed = resume(out, plan)
    done = resumed.kept
    pending = [i for i in range(plan.num_shards) if i not in done]
    assembler = ShardAssembler(out, plan, index[id_columns], pending)
    batches = shard_batches(plan, pending, settings.images.batch_size)
    with tqdm(total=plan.rows, initial=plan.rows - sum(map(len, batches)), desc=f"encode {name}",
              unit="img", disable=not progress) as bar:
        for rows, embeddings, bad in engine(clip, Path(root), index["path"].tolist(), batches,
                                            settings, device):
            assembler.add(rows, embeddings, bad)
            bar.update(len(rows) + len(bad))
    if assembler.unfinished():
        raise RuntimeError(f"the engine left shards {assembler.unfinished()[:10]} incomplete")
    shards = {**done, **assembler.written}
    _check_bad_images(out, plan, shards, index[id_columns + ["path"]],
                      settings.images.max_bad_fraction)
    manifest = write_manifest(out, plan, shards, error_ids=index[id_columns + ["path"]])
    return ExtractResult(manifest, len(done), len(assembler.written), resumed.damaged)


def image_variant(settings: ExtractSettings, device: str) -> dict:
    """What besides the model changes an image's embedding (see `compute_variant`): the decoder,
    the size limit, and for device decoders the resampler (Pillow's filter as batched matrices
    since this was added; shards of the per-image torchvision resize before it are redone)."""
    variant = dict(compute_variant(settings, device), decode=settings.images.decode,
                   max_image_pixels=settings.images.max_image_pixels)
    if settings.images.decode in DEVICE_DECODERS:
        variant["resize"] = "pillow-batched"
    return variant


def _check_bad_images(out: Path, plan: ShardPlan, shards: dict[int, ShardInfo],
                      ids: pd.DataFrame, max_fraction: float) -> None:
    errors = [e for shard in shards.values() for e in shard.errors]
    if not plan.rows or len(errors) <= max_fraction * plan.rows:
        return
    listed = [dict(e, **ids.iloc[e["row"]].to_dict()) for e in sorted(errors, key=lambda e: e["row"])]
    write_text(Path(out) / ERRORS_FILE, json.dumps(listed, indent=2, default=str) + "\n")
    reasons = Counter(e["reason"].split(":")[0] for e in errors)
    raise TooManyBadImages(
        f"{len(errors)} of {plan.rows} images ({len(errors) / plan.rows:.1%}) could not be "
        f"decoded, more than extract.images.max_bad_fraction = {max_fraction:.1%}: "
        + "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common())
        + f". Every one is listed in {Path(out) / ERRORS_FILE}; the encoded shards are kept, so "
        "a rerun after fixing the files encodes only what changed.")
