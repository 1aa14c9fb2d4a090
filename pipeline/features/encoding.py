"""What image and text extraction share: the result of a run, and the model side
(an image tower ready for throughput; the autocast dtype in use; the settings that change the
numbers and so identify a shard).
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch

from pipeline.features.settings import ExtractSettings

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "none": None}


@dataclasses.dataclass
class ExtractResult:
    manifest: dict
    reused_shards: int
    computed_shards: int
    damaged: list[str] = dataclasses.field(default_factory=list)  # computed again: see `resume`

    def summary(self, name: str) -> str:
        manifest = self.manifest
        skipped = (f", {manifest['skipped']} skipped (listed in manifest.json)"
                   if manifest["skipped"] else "")
        tokens = (f" + per-token states of width {manifest['token_width']}"
                  if manifest.get("token_width") else "")
        return (f"{manifest['rows']} {name} features of width {manifest['width']}{tokens} "
                f"({manifest['precision']}) in {len(manifest['shards'])} shard(s): "
                f"{self.computed_shards} computed, {self.reused_shards} kept from an earlier run"
                f"{skipped}{self._damaged()}")

    def _damaged(self) -> str:
        if not self.damaged:
            return ""
        more = f" and {len(self.damaged) - 5} more" if len(self.damaged) > 5 else ""
        return (f"; computed again as damaged (their bytes no longer had the checksum recorded "
                f"when they were written): {', '.join(self.damaged[:5])}{more}")


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


def compute_variant(settings: ExtractSettings, device: str) -> dict:
    """The settings besides the model that change the numbers: the device type and the autocast
    dtype actually used. Batch size and worker count are throughput knobs (they move results by
    float rounding only), so shards are kept across them."""
    device = torch.device(device)
    return {"device": device.type,
            "amp": settings.amp if amp_dtype(device, settings.amp) else "none"}


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype actually used: `amp` on CUDA, none on CPU (float32 there)."""
    return AMP_DTYPES[amp] if device.type == "cuda" else None


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
