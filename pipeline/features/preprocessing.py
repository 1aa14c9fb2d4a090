"""CLIP's eval preprocessing, cut where the pixels are still 8-bit.

open_clip's transform is `Compose([Resize, CenterCrop, MaybeConvertMode, MaybeToTensor,
Normalize])`. Decode workers run the steps before `ToTensor` and hand over uint8 pixels: a
quarter of float32's bytes through shared memory, pinned memory and the bus, which is what keeps
host memory small with many workers. `Normalize` finishes each batch on the model's device with
`ToTensor`'s and `Normalize`'s own arithmetic, so the features are bit for bit those of the whole
transform run on the CPU.

`DevicePreprocess` does the resize and crop too, for images decoded on the device (decode
"torchvision" or "nvimgcodec"): a whole batch in two matrix products per chunk of similar sizes
(`resampling`), instead of a chain of kernels per image, with Pillow's filter, so its pixels are
within one level of the PIL path's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize as NormalizeStep, PILToTensor, ToTensor

from pipeline.clip.loading import input_size
from pipeline.common import InputError
from pipeline.features.resampling import axis_weights, resize_weights, shortest_side_size

PAD_BUDGET = 1 << 26  # float32 elements of one padded chunk of images (256 MiB)
WEIGHT_CACHE_SIZES = 4096  # image sizes whose resize matrices stay on the device


class Normalize:
    """(B, 3, H, W) pixels of 0-255 (uint8, or float32 holding whole levels) -> float32,
    normalised with the CLIP's mean and std, on their device, as a new tensor. Without mean and
    std it only converts (a transform whose workers ship finished floats)."""

    def __init__(self, mean=None, std=None, scale: float = 255.0):
        self.scale = scale
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return pixels.float()
        mean, std = self.mean.to(pixels.device), self.std.to(pixels.device)
        # ToTensor's arithmetic, then Normalize's (in place on the new tensor)
        return pixels.to(torch.float32).div(self.scale).sub_(mean).div_(std)


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
        self._weights: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def weights(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows (H, height), columns (W, width)) float32 on the device, for an image size."""
        key = (height, width)
        if key not in self._weights:
            if len(self._weights) >= WEIGHT_CACHE_SIZES:
                self._weights.clear()
            out_h, out_w = self.size
            if self.mode == "squash":
                rows = resize_weights(height, out_h, self.filter)
                columns = resize_weights(width, out_w, self.filter)
            else:
                resized_h, resized_w = shortest_side_size(height, width, out_h)
                rows = axis_weights(height, resized_h, out_h, self.filter)
                columns = axis_weights(width, resized_w, out_w, self.filter)
            self._weights[key] = tuple(torch.as_tensor(w, dtype=torch.float32, device=self.device)
                                       for w in (rows, columns))
        return self._weights[key]

    def __call__(self, images: list[torch.Tensor]) -> torch.Tensor:
        out = torch.empty(len(images), 3, *self.size, dtype=torch.float32, device=self.device)
        for chunk in _chunks_of_similar_size(images, PAD_BUDGET):
            out[chunk] = self._resize(images, chunk)
        return self.normalize(out)

    def _resize(self, images: list[torch.Tensor], chunk: list[int]) -> torch.Tensor:
        """Pad the chunk's images into one batch, resize each with its own matrices (zero in the
        padding) in two batched products, rounding to 8-bit levels after each as Pillow does."""
        height = max(images[i].shape[1] for i in chunk)
        width = max(images[i].shape[2] for i in chunk)
        count, (out_h, out_w) = len(chunk), self.size
        pixels = torch.zeros(count, 3, height, width, device=self.device)
        rows = torch.zeros(count, out_h, height, device=self.device)
        columns = torch.zeros(count, width, out_w, device=self.device)
        by_size = defaultdict(list)
        for position, i in enumerate(chunk):
            by_size[tuple(images[i].shape[1:])].append(position)
        for (h, w), positions in by_size.items():
            where = torch.tensor(positions, device=self.device)
            stacked = torch.stack([images[chunk[p]] for p in positions]).to(torch.float32)
            pixels[where, :, :h, :w] = stacked
            row_weights, column_weights = self.weights(h, w)
            rows[where, :, :h] = row_weights
            columns[where, :w, :] = column_weights.T
        # Horizontal pass: every channel's rows at once, (count, 3 * height, width) @ columns.
        across = torch.bmm(pixels.view(count, 3 * height, width), columns)
        across = across.add_(0.5).floor_().clamp_(0, 255).view(count, 3, height, out_w)
        # Vertical pass: rows @ (count, height, 3 * out_w), the channels side by side.
        side_by_side = across.transpose(1, 2).reshape(count, height, 3 * out_w)
        down = torch.bmm(rows, side_by_side).add_(0.5).floor_().clamp_(0, 255)
        return down.view(count, out_h, 3, out_w).permute(0, 2, 1, 3)


def _chunks_of_similar_size(images: list[torch.Tensor], budget: int) -> list[list[int]]:
    """Positions of `images` in chunks, landscape apart from portrait and by area (so padding to
    the chunk's largest height and width wastes little), each padded chunk within `budget`
    elements (a chunk holds at least one image, however big)."""
    def shape_order(i: int) -> tuple[bool, int]:
        height, width = images[i].shape[1:]
        return height > width, height * width

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
