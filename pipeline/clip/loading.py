"""The frozen CLIP: build it from open_clip, pin its weights to safetensors, load it back.

A resolved CLIP is a folder with two files: `model.safetensors` (the weights) and `card.json`
(model name, pretrained tag, architecture config, preprocessing, width, weights hash). Everything
downstream loads the model from that folder alone, and features carry the card's fingerprint
(encoding itself lives in `pipeline.features`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import open_clip
import torch
from safetensors.torch import load_model, save_model

from pipeline.clip.fingerprint import fingerprint_of
from pipeline.common import InputError, atomic_path, sha256_file, write_json

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
BUILTIN_CONFIGS = Path(__file__).parent / "configs"  # our own architectures, e.g. the demo's


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
        raise InputError(f"open_clip has no model {model_name!r} (open_clip.list_models() lists "
                         "them, e.g. ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336)")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained is not None and pretrained not in tags and not Path(pretrained).is_file():
        raise InputError(f"{model_name} has no pretrained tag {pretrained!r} and no such file "
                         f"exists; its tags: {', '.join(tags) or 'none'}")
    with _quiet_open_clip_logs():
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(model_name,
                                                                         pretrained=pretrained)
        except RuntimeError as error:
            if "Failed to download" not in str(error):
                raise
            raise InputError(_download_failure(model_name, pretrained, error)) from None
    card = {
        "model_name": model_name,
        "pretrained": pretrained,
        "config": open_clip.get_model_config(model_name),
        "preprocess": _jsonable(model.visual.preprocess_cfg),
        "embed_dim": int(open_clip.get_model_config(model_name)["embed_dim"]),
    }
    return Clip(model.eval(), preprocess, open_clip.get_tokenizer(model_name), card)


def _download_failure(model_name: str, tag: str, error: Exception) -> str:
    """One line: which weights, where from, why not, and how to run without a network."""
    hub = (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("hf_hub", "").strip("/")
    reason = str(error).splitlines()[0].split("Last error: ")[-1]
    reason = reason.split(". ")[0].rstrip(".")[:200] + "."  # its first sentence
    return (f"could not fetch the {tag!r} weights of {model_name} from the Hugging Face hub"
            f"{f' ({hub})' if hub else ''}: {reason} To run offline, fetch them once where there "
            f"is a network (python -c \"import open_clip; open_clip.create_model('{model_name}', "
            f"pretrained='{tag}')\"), copy the hub cache (~/.cache/huggingface, or $HF_HOME) to "
            "this machine and set HF_HUB_OFFLINE=1; or set the backbone's pretrained "
            "(clip.backbones) to a checkpoint file")


@contextlib.contextmanager
def _quiet_open_clip_logs():
    """open_clip logs a warning when it initialises randomly (here that is the intent) and an
    error before it raises a failed download (which `create_clip` reports itself); the hub
    client logs each retry. Keep them off the terminal while a model is built."""
    class DropExpected(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            message = record.getMessage()
            return not ("No pretrained weights loaded" in message
                        or "Failed to download" in message)

    root, drop = logging.getLogger(), DropExpected()
    hub = logging.getLogger("huggingface_hub")
    hub_level = hub.level
    root.addFilter(drop)
    hub.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeFilter(drop)
        hub.setLevel(hub_level)


def _jsonable(value):
    return json.loads(json.dumps(value, default=list))


def save_clip(clip: Clip, folder: Path, extra: dict | None = None) -> dict:
    """Write weights and card into `folder` (temp names, then rename). Returns the card."""
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_model(clip.model, str(tmp))
        card = dict(clip.card, weights_sha256=sha256_file(tmp), weights_file=WEIGHTS_FILE,
                    **(extra or {}))
    write_json(folder / CARD_FILE, card)
    clip.card = card
    return card


def read_card(folder: Path) -> dict:
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise InputError(f"no CLIP at {folder} (no {CARD_FILE}): the `clip` stage makes it")
    return json.loads(path.read_text())


def load_clip(folder: Path, device: str | torch.device = "cpu") -> Clip:
    """Rebuild the CLIP saved in `folder` from its card and weights alone (no download)."""
    card = read_card(folder)
    weights = Path(folder) / card["weights_file"]
    if sha256_file(weights) != card["weights_sha256"]:
        raise InputError(f"{weights} does not match the hash in its card: the folder is corrupt "
                         "(rerun the `clip` stage, or `dvc checkout`)")
    clip = create_clip(card["model_name"], None, card["config"])
    load_model(clip.model, str(weights), device=str(device))
    clip.model.to(device).eval()
    clip.card = card
    return clip
