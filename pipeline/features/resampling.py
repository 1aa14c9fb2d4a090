"""Pillow's antialiased resize as matrices, so a GPU resizes a whole batch in two matmuls.

Pillow resamples separably: each output pixel of a pass is a weighted sum of the input pixels
within the filter's support, the support widened by the scale when shrinking (antialiasing), the
weights normalised to sum to one, the result rounded to 8 bits after each pass. For one image
size these weights form a (out, in) matrix per axis, so

    resized = round(rows @ round(image @ columns.T))

reproduces `Image.resize` exactly in float64 (the weights are quantised to Pillow's 22-bit fixed
point), and to within one level of 8 bits, on a few pixels in ten thousand, in float32. That
holds for the resizes CLIP makes of common photo sizes (tested); for some other shapes Pillow 13
runs the vertical pass first, and the rounding between passes then moves a minority of pixels
by up to a few levels. Restricting the matrices' rows to a crop window gives resize-then-center-crop in the same two
products. This is the arithmetic of Pillow's `libImaging/Resample.c` (`precompute_coeffs`).
"""

from __future__ import annotations

import numpy as np


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5  # Pillow's (and Keys') bicubic
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


PRECISION_BITS = 22  # Pillow's fixed-point weights for 8-bit images
FILTERS = {"bicubic": (_bicubic, 2.0), "bilinear": (_bilinear, 1.0)}  # name -> (kernel, support)


def resize_weights(in_size: int, out_size: int, filter_name: str = "bicubic",
                   keep: tuple[int, int] | None = None) -> np.ndarray:
    """The (out, in) float64 matrix that resamples an axis of `in_size` pixels to `out_size` the
    way Pillow does; `keep=(start, length)` returns only those output rows (a crop)."""
    kernel, support = FILTERS[filter_name]
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support *= filter_scale
    start, length = keep if keep is not None else (0, out_size)
    weights = np.zeros((length, in_size), np.float64)
    for row, out in enumerate(range(start, start + length)):
        center = (out + 0.5) * scale
        low = max(int(center - support + 0.5), 0)
        high = min(int(center + support + 0.5), in_size)
        taps = kernel((np.arange(low, high) - center + 0.5) / filter_scale)
        total = taps.sum()
        weights[row, low:high] = taps / total if total != 0.0 else taps
    return _as_pillow_fixed_point(weights)


def _as_pillow_fixed_point(weights: np.ndarray) -> np.ndarray:
    scaled = weights * (1 << PRECISION_BITS)
    rounded = np.where(weights < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
    return rounded / (1 << PRECISION_BITS)


def shortest_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's `Resize(size)` for an int size: the shorter side becomes `size`, the longer
    keeps the aspect ratio, truncated (`int(size * long / short)`)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def center_crop_start(size: int, crop: int) -> int:
    """torchvision's `CenterCrop` offset along one axis (the crop never exceeds the image here)."""
    return int(round((size - crop) / 2.0))


def axis_weights(in_size: int, resized: int, crop: int, filter_name: str) -> np.ndarray:
    """(crop, in_size): resize one axis to `resized` pixels, then keep its centered `crop`."""
    if resized < crop:
        raise ValueError(f"a {resized}-pixel side cannot be center-cropped to {crop}")
    return resize_weights(in_size, resized, filter_name,
                          keep=(center_crop_start(resized, crop), crop))
