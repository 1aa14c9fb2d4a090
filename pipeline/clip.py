"""The frozen CLIP: build it from open_clip, pin its weights to safetensors, load it back.

A resolved CLIP is a folder with two files: `model.safetensors` (the weights) and `card.json`
(model name, pretrained tag, architecture config, preprocessing, width, weights hash). Everything
downstream loads the model from that folder alone, and features carry the card's fingerprint
(encoding itself lives in `extraction`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import tempfile
from pathlib import Path

import open_clip
import torch
from safetensors.torch import load_model, save_model

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
BUILTIN_CONFIGS = Path(__file__).parent / "clip_configs"  # our own architectures, e.g. the demo's


@dataclasses.dataclass
class Clip:
    """A loaded CLIP with what it takes to feed it."""

    model: torch.nn.Module
    preprocess: object  # torchvision transform: PIL image -> (3, H, W) tensor
    tokenizer: object  # list[str] -> (N, context_length) token ids
    card: dict

    @property
    def fingerprint(self) -> dict:
        return fingerprint_of(self.card)


def fingerprint_of(card: dict) -> dict:
    """What identifies the features a CLIP makes: same fingerprint, same features."""
    return {key: card[key] for key in ("model_name", "pretrained", "weights_sha256", "embed_dim",
                                       "preprocess")}


def input_size(preprocess: dict) -> tuple[int, int]:
    """(height, width) of the model's input, from a card's `preprocess` config."""
    size = preprocess["size"]
    height, width = (size, size) if isinstance(size, int) else size
    return int(height), int(width)


def register_config(model_name: str, config: dict) -> None:
    """Make a custom architecture (open_clip's JSON config format) known to open_clip by name."""
    folder = Path(tempfile.mkdtemp(prefix="fgvc-clip-config-"))
    (folder / f"{model_name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)


def create_clip(model_name: str, pretrained: str | None, config: dict | None = None) -> Clip:
    """Build a CLIP: open_clip's `model_name` with `pretrained` weights (a hub tag such as
    'openai', or None for random init); `config` registers a custom architecture first."""
    if config is not None:
        register_config(model_name, config)
    elif model_name not in open_clip.list_models() and (BUILTIN_CONFIGS / f"{model_name}.json").is_file():
        open_clip.add_model_config(BUILTIN_CONFIGS)
    if model_name not in open_clip.list_models():
        raise ValueError(f"open_clip has no model {model_name!r}; known: see open_clip.list_models()")
    with _quiet_random_init(pretrained is None):
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    card = {
        "model_name": model_name,
        "pretrained": pretrained,
        "config": open_clip.get_model_config(model_name),
        "preprocess": _jsonable(model.visual.preprocess_cfg),
        "embed_dim": int(open_clip.get_model_config(model_name)["embed_dim"]),
    }
    return Clip(model.eval(), preprocess, open_clip.get_tokenizer(model_name), card)


@contextlib.contextmanager
def _quiet_random_init(quiet: bool):
    """open_clip warns (on the root logger) when it initialises randomly; here that is the intent."""
    class DropRandomInitWarning(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "No pretrained weights loaded" not in record.getMessage()

    root, drop = logging.getLogger(), DropRandomInitWarning()
    if quiet:
        root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _jsonable(value):
    return json.loads(json.dumps(value, default=list))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_clip(clip: Clip, folder: Path, extra: dict | None = None) -> dict:
    """Write weights and card into `folder` (temp names, then rename). Returns the card."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp_weights = folder / (WEIGHTS_FILE + ".tmp")
    save_model(clip.model, str(tmp_weights))
    card = dict(clip.card, weights_sha256=_sha256(tmp_weights), weights_file=WEIGHTS_FILE,
                **(extra or {}))
    tmp_weights.replace(folder / WEIGHTS_FILE)
    tmp_card = folder / (CARD_FILE + ".tmp")
    tmp_card.write_text(json.dumps(card, indent=2) + "\n")
    tmp_card.replace(folder / CARD_FILE)
    clip.card = card
    return card


def read_card(folder: Path) -> dict:
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no CLIP card at {path}: run the `clip` stage first")
    return json.loads(path.read_text())


def load_clip(folder: Path, device: str | torch.device = "cpu") -> Clip:
    """Rebuild the CLIP saved in `folder` from its card and weights alone (no download)."""
    card = read_card(folder)
    weights = Path(folder) / card["weights_file"]
    if _sha256(weights) != card["weights_sha256"]:
        raise ValueError(f"{weights} does not match the hash in its card: the folder is corrupt")
    clip = create_clip(card["model_name"], None, card["config"])
    load_model(clip.model, str(weights), device=str(device))
    clip.model.to(device).eval()
    clip.card = card
    return clip
