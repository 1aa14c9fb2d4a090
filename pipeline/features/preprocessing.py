"""CLIP's eval preprocessing, cut where the pixels are still 8-bit.

open_clip's transform is `Compose([Resize, CenterCrop, MaybeConvertMode, MaybeToTensor,
Normalize])`. Decode workers run the steps before `ToTensor` and hand over uint8 pixels: a
quarter of float32's bytes through shared memory, pinned memory and the bus, which is what keeps
host memory small with many workers. `Normalize` finishes each batch on the model's device by
table lookup: the table holds what `ToTensor` and `Normalize` compute on the CPU for each of the
256 levels, so the pixels are bit for bit those of the whole transform run on the CPU, on any
device.

`DevicePreprocess` does the resize and crop too, for images decoded on the device (decode
"torchvision" or "nvimgcodec"): a whole batch in two matrix products per chunk of similar sizes
(`resampling`), instead of a chain of kernels per image, with Pillow's filter: for CLIP's
resizes of common photo sizes, Pillow's pixels within one level (float32 products).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize as NormalizeStep, PILToTensor, ToTensor

from pipeline.clip.loading import input_size
from pipeline.common import InputError
from pipeline.features.resampling import axis_weights, resize_weights, shortest_side_size

PAD_BUDGET = 1 << 26  # float32 elements of one padded chunk of images (256 MiB)
WEIGHT_CACHE_BYTES = 256 << 20  # resize matrices kept on the device, least recently used out


class Normalize:
    """(B, 3, H, W) pixels of 0-255 (uint8, or float32 holding whole levels) -> float32,
    normalised with the CLIP's mean and std, on their device, as a new tensor. Without mean and
    std it only converts (a transform whose workers ship finished floats)."""

    def __init__(self, mean=None, std=None):
        self.table = None
        if mean is not None:
            levels = torch.arange(256, dtype=torch.float32).div(255.0)  # ToTensor's arithmetic
            mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1)
            std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1)
            self.table = levels.expand(len(mean), 256).sub(mean).div(std)  # Normalize's
            self.std = std.view(-1, 1, 1)  # one level is std * 255 in normalised units
        self._tables: dict[torch.device, torch.Tensor] = {}

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return pixels.float()
        table = self._table_on(pixels.device)  # (C * 256,): channel c's level v at c * 256 + v
        offsets = torch.arange(0, table.numel(), 256, dtype=torch.int32,
                               device=pixels.device).view(-1, 1, 1)
        index = pixels.to(torch.int32) + offsets
        return table.index_select(0, index.reshape(-1)).view(pixels.shape)

    def _table_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._tables:
            self._tables[device] = self.table.reshape(-1).to(device)
        return self._tables[device]


def split_preprocess(transform) -> tuple[Callable[[Image.Image], torch.Tensor], Normalize]:
    """(PIL image -> uint8 (3, H, W) pixels, the `Normalize` that finishes them) from open_clip's
    transform. A transform of another shape is kept whole (its workers ship floats)."""
    steps = list(getattr(transform, "transforms", []))
    cut = next((i for i, step in enumerate(steps) if isinstance(step, ToTensor)), None)
    if cut is None or cut != len(steps) - 2 or not isinstance(steps[-1], NormalizeStep):
        return transform, Normalize()
    return Compose(steps[:cut] + [PILToTensor()]), Normalize(steps[-1].mean, steps[-1].std)


class DevicePreprocess:
    """Resize, center-crop and normalise decoded uint8 (3, h, w) images on their device into one
    (B, 3, H, W) float32 batch, the way open_clip's eval transform does with Pillow. Supports
    the `shortest` (square) and `squash` resize modes, bicubic and bilinear."""

    def __init__(self, preprocess: dict, device: str | torch.device):
        height, width = input_size(preprocess)
        mode = preprocess.get("resize_mode", "shortest")
        if mode not in {"shortest", "squash"} or (mode == "shortest" and height != width):
            raise InputError(f"decoding on the device supports open_clip's square 'shortest' "
                             f"and 'squash' resize modes, not {mode!r} at {height}x{width}; "
                             "use extract.images.decode: pil")
        self.filter = preprocess.get("interpolation", "bicubic")
        if self.filter not in {"bicubic", "bilinear"}:
            raise InputError(f"decoding on the device does not support the interpolation "
                             f"{self.filter!r}; use extract.images.decode: pil")
        self.device = torch.device(device)
        self.size, self.mode = (int(height), int(width)), mode
        self.normalize = Normalize(preprocess["mean"], preprocess["std"])
        self._weights: OrderedDict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._weight_bytes = 0

    def weights(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows (H, height), columns (width, W)) float32 on the device, for an image size."""
        key = (height, width)
        if key in self._weights:
            self._weights.move_to_end(key)
            return self._weights[key]
        out_h, out_w = self.size
        if self.mode == "squash":
            rows = resize_weights(height, out_h, self.filter)
            columns = resize_weights(width, out_w, self.filter)
        else:
            resized_h, resized_w = shortest_side_size(height, width, out_h)
            rows = axis_weights(height, resized_h, out_h, self.filter)
            columns = axis_weights(width, resized_w, out_w, self.filter)
        pair = tuple(self._to_device(np.ascontiguousarray(w, dtype=np.float32))
                     for w in (rows, columns.T))
        self._weights[key] = pair
        self._weight_bytes += sum(w.numel() * 4 for w in pair)
        while self._weight_bytes > WEIGHT_CACHE_BYTES and len(self._weights) > 1:
            _, dropped = self._weights.popitem(last=False)
            self._weight_bytes -= sum(w.numel() * 4 for w in dropped)
        return pair

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """A host array on the device, its dtype kept, without stalling the device (pinned
        memory, asynchronous copy)."""
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def __call__(self, images: list[torch.Tensor]) -> torch.Tensor:
        if not images:
            return torch.zeros(0, 3, *self.size, device=self.device)
        chunks = _chunks_of_similar_size(images, PAD_BUDGET)
        with _full_float32_matmul():
            resized = torch.cat([self._resize([images[i] for i in chunk]) for chunk in chunks])
        order = [i for chunk in chunks for i in chunk]  # resized row k is image order[k]
        if order != sorted(order):
            resized = resized[self._to_device(np.argsort(order))]  # int64 positions
        return self.normalize(resized)

    def _resize(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Pad a chunk's images into one batch, resize each with its own matrices (zero in the
        padding) in two batched products, rounding to 8-bit levels after each as Pillow does.
        Images of one size lie next to each other (`_chunks_of_similar_size`), so each size is a
        slice: no index tensors, no host sync."""
        height = max(image.shape[1] for image in images)
        width = max(image.shape[2] for image in images)
        count, (out_h, out_w) = len(images), self.size
        pixels = torch.zeros(count, 3, height, width, device=self.device)
        rows = torch.zeros(count, out_h, height, device=self.device)
        columns = torch.zeros(count, width, out_w, device=self.device)
        start = 0
        for (h, w), group in itertools.groupby(images, key=lambda image: tuple(image.shape[1:])):
            group = list(group)
            stop = start + len(group)
            pixels[start:stop, :, :h, :w] = torch.stack(group)
            row_weights, column_weights = self.weights(h, w)
            rows[start:stop, :, :h] = row_weights
            columns[start:stop, :w, :] = column_weights
            start = stop
        # Horizontal pass: every channel's rows at once, (count, 3 * height, width) @ columns.
        across = torch.bmm(pixels.view(count, 3 * height, width), columns)
        across = across.add_(0.5).floor_().clamp_(0, 255).view(count, 3, height, out_w)
        # Vertical pass: rows @ (count, height, 3 * out_w), the channels side by side.
        side_by_side = across.transpose(1, 2).reshape(count, height, 3 * out_w)
        down = torch.bmm(rows, side_by_side).add_(0.5).floor_().clamp_(0, 255)
        return down.view(count, out_h, 3, out_w).permute(0, 2, 1, 3)


@contextlib.contextmanager
def _full_float32_matmul():
    """TF32 (`torch.set_float32_matmul_precision("high")`, which a training script may have
    set) would round the weights to 10 bits and move pixels by levels: the resize asks for full
    float32 and restores the setting after."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _chunks_of_similar_size(images: list[torch.Tensor], budget: int) -> list[list[int]]:
    """Positions of `images` in chunks, landscape apart from portrait and by area (so padding to
    the chunk's largest height and width wastes little), each padded chunk within `budget`
    elements (a chunk holds at least one image, however big)."""
    def shape_order(i: int) -> tuple[bool, int, int, int]:
        height, width = images[i].shape[1:]
        return height > width, height * width, height, width  # one size: side by side

    order = sorted(range(len(images)), key=shape_order)
    chunks, current, height, width = [], [], 0, 0
    for i in order:
        h, w = images[i].shape[1:]
        grown_h, grown_w = max(height, h), max(width, w)
        if current and (len(current) + 1) * 3 * grown_h * grown_w > budget:
            chunks.append(current)
            current, grown_h, grown_w = [], h, w
        current.append(i)
        height, width = grown_h, grown_w
    return chunks + ([current] if current else [])
