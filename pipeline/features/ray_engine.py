"""The Ray Data engine for image extraction: decode tasks and CLIP encoder actors on a cluster.

    pending rows --map_batches(decode, CPU tasks)--> pixels --map_batches(encoder actors, one
    per GPU)--> embeddings --iter_batches--> this process, which writes the shards (`images`)

The driver writes exactly the shard layout and manifest of the local engine, so the two are
interchangeable and a feature set started with one resumes with the other. (Ray batches do not
follow shard boundaries, so its embeddings equal the local engine's up to float rounding, not
bit for bit.) Workers load the CLIP
from its folder and read images by path: on a cluster both must be on storage every node sees.
`address=None` starts a local Ray instance; "auto" or "ray://head:10001" joins a cluster.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.clip.loading import Clip, input_size, load_clip
from pipeline.common import InputError
from pipeline.features.encoding import ImageEncoder
from pipeline.features.settings import ExtractSettings, RayEngine
from pipeline.features.images import Batch, preprocess_file
from pipeline.features.preprocessing import split_preprocess


def decode_images(batch: dict[str, np.ndarray], root: str, preprocess, max_pixels: int,
                  shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Ray Data batch function: paths -> uint8 pixels, resized and cropped (`preprocess` is the
    PIL part of the CLIP's preprocessing), or the reason a file was skipped (with zeros of the
    same `shape` in its place, so every batch stacks into one array)."""
    decoded = [preprocess_file(Path(root) / path, preprocess, max_pixels) for path in batch["path"]]
    filled = np.stack([p.numpy() if p is not None else np.zeros(shape, np.uint8)
                       for p, _ in decoded])
    reasons = np.array([reason or "" for _, reason in decoded], dtype=object)
    return {"row": batch["row"], "pixels": filled, "reason": reasons}


class EncodeImages:
    """Ray Data actor: holds one CLIP (on its GPU, if it was given one) and encodes pixel batches."""

    def __init__(self, clip_dir: str, device: str, amp: str):
        clip = load_clip(Path(clip_dir), device)
        self.encode = ImageEncoder(clip.model, device, amp)
        _, self.normalize = split_preprocess(clip.preprocess)
        self.device = device
        self.width = clip.card["embed_dim"]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ok = batch["reason"] == ""
        embeddings = np.zeros((len(ok), self.width), np.float32)
        if ok.any():
            pixels = torch.from_numpy(np.ascontiguousarray(batch["pixels"][ok]))
            embeddings[ok] = self.encode(self.normalize(pixels.to(self.device)))
        return {"row": batch["row"], "embedding": embeddings, "reason": batch["reason"]}


class RayImageEngine:
    """Runs the image batches of `images.extract_image_features` on Ray Data."""

    def __init__(self, clip_dir: Path, settings: RayEngine, init_kwargs: dict | None = None):
        if importlib.util.find_spec("ray") is None:
            raise InputError("the Ray engine (extract.images.engine: ray) needs Ray: "
                             "pip install -e '.[ray]'")
        self.clip_dir = str(Path(clip_dir).resolve())
        self.settings, self.init_kwargs = settings, init_kwargs or {}

    def __call__(self, clip: Clip, root: Path, paths: list[str], batches: list[list[int]],
                 settings: ExtractSettings, device: str) -> Iterator[Batch]:
        import ray

        rows = [row for batch in batches for row in batch]
        if not rows:
            return
        if not ray.is_initialized():
            ray.init(address=self.settings.address, include_dashboard=False, log_to_driver=False,
                     **self.init_kwargs)
        # An actor given no GPU still sees the host's GPUs: encode on CUDA only when both the
        # params ask for it and Ray hands each encoder a GPU.
        ray_settings, batch_size = self.settings, settings.images.batch_size
        device = ("cuda" if str(device).startswith("cuda") and ray_settings.gpus_per_encoder > 0
                  else "cpu")
        table = pd.DataFrame({"row": np.array(rows, np.int64), "path": [paths[r] for r in rows]})
        blocks = max(1, min(len(batches), 200))
        dataset = (
            ray.data.from_pandas(table).repartition(blocks)
            .map_batches(decode_images, batch_size=batch_size, num_cpus=ray_settings.decode_cpus,
                         fn_kwargs={"root": str(Path(root).resolve()),
                                    "preprocess": split_preprocess(clip.preprocess)[0],
                                    "max_pixels": settings.images.max_image_pixels,
                                    "shape": (3, *input_size(clip.card["preprocess"]))})
            .map_batches(EncodeImages, fn_constructor_args=(self.clip_dir, device, settings.amp),
                         batch_size=batch_size,
                         compute=ray.data.ActorPoolStrategy(size=ray_settings.encoders),
                         num_gpus=ray_settings.gpus_per_encoder,
                         num_cpus=ray_settings.cpus_per_encoder))
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            ok = batch["reason"] == ""
            bad = [(int(row), str(reason)) for row, reason in
                   zip(batch["row"][~ok], batch["reason"][~ok])]
            yield batch["row"][ok].astype(np.int64), batch["embedding"][ok], bad
