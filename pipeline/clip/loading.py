"""The frozen CLIP: built by its library's loader, pinned to safetensors, loaded back.

A resolved CLIP is a folder: `model.safetensors` (the weights), `card.json` (library, model
name, pretrained tag, architecture config, preprocessing, width, weights hash) and whatever
else its library needs offline (a tokenizer's files). Everything downstream loads the model from
that folder alone, and features carry the card's fingerprint. Which library builds the model is
a registry (`pipeline.clip.loaders`): open_clip, Hugging Face transformers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from pipeline.clip.base import Clip
from pipeline.clip.fingerprint import CARD_FILE, read_card
from pipeline.common import InputError, atomic_path, sha256_file, write_json

__all__ = ["Clip", "create_clip", "input_size", "load_clip", "save_clip"]

WEIGHTS_FILE = "model.safetensors"
DEFAULT_LIBRARY = "open_clip"  # cards written before the loader registry name none


def _loader(library: str):
    from pipeline.clip.loaders import CLIP_LIBRARIES

    try:
        return CLIP_LIBRARIES.get(library)
    except KeyError as error:
        raise InputError(str(error).strip("'\"")) from None


def create_clip(model_name: str, pretrained: str | None, library: str = DEFAULT_LIBRARY) -> Clip:
    """Build a CLIP: `library`'s `model_name` with `pretrained` weights (open_clip: a hub tag
    such as 'openai', or None for a random init; transformers: a revision)."""
    return _loader(library).create(model_name, pretrained)


def save_clip(clip: Clip, folder: Path, extra: dict | None = None) -> dict:
    """Write weights, the library's own files and the card into `folder` (temp names, then
    rename). Returns the card."""
    folder = Path(folder)
    clip.save_files(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_model(clip.model, str(tmp))
        card = dict(clip.card, weights_sha256=sha256_file(tmp), weights_file=WEIGHTS_FILE,
                    **(extra or {}))
    write_json(folder / CARD_FILE, card)
    clip.card = card
    return card


def load_clip(folder: Path, device: str | torch.device = "cpu") -> Clip:
    """Rebuild the CLIP saved in `folder` from its card and files alone (no download)."""
    card = read_card(folder)
    weights = Path(folder) / card["weights_file"]
    if sha256_file(weights) != card["weights_sha256"]:
        raise InputError(f"{weights} does not match the hash in its card: the folder is corrupt "
                         "(rerun the `clip` stage, or `dvc checkout`)")
    clip = _loader(card.get("library", DEFAULT_LIBRARY)).rebuild(card, Path(folder))
    load_model(clip.model, str(weights), device=str(device))
    clip.model.to(device).eval()
    clip.card = card
    return clip


def input_size(preprocess: dict) -> tuple[int, int]:
    """(height, width) of the model's input, from a card's `preprocess` config."""
    size = preprocess["size"]
    height, width = (size, size) if isinstance(size, int) else size
    return int(height), int(width)
