"""What image and text extraction share: the options of a run, its result, and the model side
(an image tower ready for throughput; the autocast dtype in use; the settings that change the
numbers and so identify a shard).
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch

from pipeline.features.decoding import DEFAULT_MAX_PIXELS

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "none": None}


@dataclasses.dataclass(frozen=True)
class ExtractOptions:
    batch_size: int = 256
    num_workers: int = 0  # DataLoader decode processes; 0 decodes in the main process
    device: str = "cpu"
    amp: str = "float16"  # autocast dtype on CUDA ("none": full precision); ignored on CPU
    precision: str = "float16"  # stored embeddings
    shard_rows: int = 65536
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    max_bad_fraction: float = 0.01
    decode: str = "pil"  # "torchvision": JPEGs decoded and preprocessed on `device`


@dataclasses.dataclass
class ExtractResult:
    manifest: dict
    reused_shards: int
    computed_shards: int


class ImageEncoder:
    """A CLIP image tower ready for throughput: eval, inference mode, autocast and channels-last
    on CUDA. Call it with a preprocessed (B, 3, H, W) batch; returns (B, D) float32 numpy."""

    def __init__(self, model: torch.nn.Module, device: str, amp: str = "float16"):
        self.model, self.device = model.eval().to(device), torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.amp_dtype = amp_dtype(self.device, amp)
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, non_blocking=True)
        if self.cuda:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.amp_dtype):
            features = self.model.encode_image(pixels)
        return features.float().cpu().numpy()


def compute_variant(options: ExtractOptions) -> dict:
    """The settings besides the model that change the numbers: the device type and the autocast
    dtype actually used. Batch size and worker count are throughput knobs (they move results by
    float rounding only), so shards are kept across them."""
    device = torch.device(options.device)
    return {"device": device.type, "amp": options.amp if amp_dtype(device, options.amp) else "none"}


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype actually used: `amp` on CUDA, none on CPU (float32 there)."""
    return AMP_DTYPES[amp] if device.type == "cuda" else None


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
