"""How long the model takes per input on this machine, measured on a small batch: what a stage
needs to say, before a long job starts, how long it would take (e.g. a preset on the CPU)."""

from __future__ import annotations

import time

import torch

from pipeline.clip.loading import Clip, input_size


@torch.no_grad()
def seconds_per_input(clip: Clip, kind: str, device: str | torch.device, batch: int = 8) -> float:
    """Seconds the model takes for one image (`kind` "image": a blank one at the model's input
    size) or one short text (`kind` "text"), the second of two timed batches (the first warms
    up). Decoding and tokenising are not counted: the figure is a lower bound."""
    if kind == "image":
        inputs = torch.zeros(batch, 3, *input_size(clip.card["preprocess"]), device=device)
        encode = clip.model.encode_image
    else:
        inputs = clip.tokenize(["a photo of a small bird with a short beak"] * batch)[0].to(device)
        encode = clip.model.encode_text
    for _ in range(2):
        start = time.perf_counter()
        encode(inputs)
        seconds = time.perf_counter() - start
    return seconds / batch
