"""JPEG decode and CLIP preprocessing on the model's device (`extract.images.decode: torchvision`).

On a GPU, PIL decoding on CPU workers is what bounds extraction (a ViT-B-32 encodes far more
images per second than 16 cores decode). Here workers only read file bytes; the batch is decoded
by torchvision's batched `decode_jpeg(device=...)` (nvJPEG on CUDA) and resized, cropped and
normalised there, following the CLIP's own preprocessing config. Files that are not JPEGs, or
that nvJPEG refuses, go through the PIL path instead (`decoding`), so nothing is lost and
bad files still get their reason.

Pixels differ slightly from PIL's (another bicubic resampler), so features differ slightly too:
the feature set records the decoder, and shards of one decoder are never mixed with another's.
"""

from __future__ import annotations

import warnings

import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from pipeline.clip.loading import input_size
from pipeline.common import InputError

JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"  # EOI: a file without it was cut short
INTERPOLATIONS = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
                  "nearest": InterpolationMode.NEAREST}


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


class DevicePreprocess:
    """open_clip's eval preprocessing (resize, center crop, normalise) for decoded uint8 images
    already on `device`. Supports the `shortest` (square) and `squash` resize modes."""

    def __init__(self, preprocess: dict, device: str | torch.device):
        height, width = input_size(preprocess)
        mode = preprocess.get("resize_mode", "shortest")
        if mode not in {"shortest", "squash"} or (mode == "shortest" and height != width):
            raise InputError(f"decode 'torchvision' supports open_clip's square 'shortest' and "
                             f"'squash' resize modes, not {mode!r} at {height}x{width}; use 'pil'")
        if preprocess.get("interpolation", "bicubic") not in INTERPOLATIONS:
            raise InputError(f"decode 'torchvision' does not support the interpolation "
                             f"{preprocess['interpolation']!r}; use 'pil'")
        self.device = torch.device(device)
        self.size, self.mode = (int(height), int(width)), mode
        self.interpolation = INTERPOLATIONS[preprocess.get("interpolation", "bicubic")]
        self.mean = torch.tensor(preprocess["mean"], device=self.device).view(3, 1, 1)
        self.std = torch.tensor(preprocess["std"], device=self.device).view(3, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(3, h, w) uint8 -> (3, H, W) float32, normalised."""
        if self.mode == "squash":
            image = F.resize(image, list(self.size), self.interpolation, antialias=True)
        else:
            image = F.resize(image, [self.size[0]], self.interpolation, antialias=True)
            image = F.center_crop(image, list(self.size))
        return (image.float() / 255.0 - self.mean) / self.std


def decode_jpegs(data: list[torch.Tensor], device: torch.device
                 ) -> tuple[list[torch.Tensor | None], list[int]]:
    """Decode 1-D uint8 byte tensors to (3, h, w) uint8 RGB on `device`, as one batch when all
    decode; on a failure, one by one. Returns the images (None where decoding failed) and the
    positions that failed."""
    if not data:
        return [], []
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its codecs in favour of TorchCodec, whose batched GPU
        # image decoding is the migration path once it is as widely installed; until then one
        # warning per batch would bury the progress bar.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device)), []
        except RuntimeError:
            images, failed = [], []
            for i, item in enumerate(data):
                try:
                    images.append(decode_jpeg(item, mode=ImageReadMode.RGB, device=device))
                except RuntimeError:
                    images.append(None)
                    failed.append(i)
            return images, failed
