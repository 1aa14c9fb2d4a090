"""open_clip's models (library `open_clip`): a model name (ViT-B-32) and a pretrained tag
(openai) fetched from its hub, a checkpoint file, or a random init (the demo's, trained here).
Our own small architectures (the demo's) are open_clip JSON configs in `pipeline/clip/configs`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path

from pipeline.clip.loaders import CLIP_LIBRARIES
from pipeline.clip.base import Clip
from pipeline.common import InputError

BUILTIN_CONFIGS = Path(__file__).parents[1] / "configs"  # our own architectures, e.g. the demo's


class OpenClip(Clip):
    """An open_clip model; `tokenizer` is open_clip's (SimpleTokenizer: 0 pads, an end token)."""

    def __init__(self, model, preprocess, card: dict, tokenizer):
        super().__init__(model, preprocess, card)
        self.tokenizer = tokenizer

    def tokenize(self, texts):
        ids = self.tokenizer(list(texts))  # (N, L), 0 pads
        end = getattr(self.tokenizer, "eot_token_id", None)
        if end is None or not len(ids):  # no end token to find: count what is not padding
            return ids, (ids != 0).sum(dim=1)
        # up to the end token: a "!" in the text is token 0 too, so padding is not what is 0
        return ids, (ids == end).int().argmax(dim=1) + 1

    def encode_text_states(self, ids):
        result = self.model.forward_intermediates(text=ids, text_indices=1,
                                                  normalize_intermediates=True, normalize=False)
        return result["text_features"], result["text_intermediates"][-1]

    @property
    def token_width(self) -> int:
        text_cfg = self.card["config"].get("text_cfg", {})
        if "hf_model_name" in text_cfg:
            raise InputError(f"{self.card['model_name']}: per-token states are supported for "
                             "open_clip's own text transformers, not Hugging Face text towers")
        return int(text_cfg.get("width", 512))  # open_clip's CLIPTextCfg default


def _register_config(model_name: str, config: dict) -> None:
    """Make an architecture (open_clip's JSON config format) known to open_clip by name."""
    import open_clip

    folder = Path(tempfile.mkdtemp(prefix="fgvc-clip-config-"))
    (folder / f"{model_name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)


def _build(model_name: str, pretrained: str | None, config: dict | None = None) -> OpenClip:
    import open_clip

    if config is not None:
        _register_config(model_name, config)
    elif (model_name not in open_clip.list_models()
          and (BUILTIN_CONFIGS / f"{model_name}.json").is_file()):
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
        "library": "open_clip",
        "model_name": model_name,
        "pretrained": pretrained,
        "config": open_clip.get_model_config(model_name),
        "preprocess": json.loads(json.dumps(model.visual.preprocess_cfg, default=list)),
        "embed_dim": int(open_clip.get_model_config(model_name)["embed_dim"]),
    }
    return OpenClip(model.eval(), preprocess, card, open_clip.get_tokenizer(model_name))


class OpenClipLoader:
    """open_clip: a model name and a pretrained tag, or a random init (`pretrained: null`)."""

    def create(self, model: str, pretrained: str | None) -> OpenClip:
        return _build(model, pretrained)

    def rebuild(self, card: dict, folder: Path) -> OpenClip:
        return _build(card["model_name"], None, card["config"])


CLIP_LIBRARIES.register("open_clip")(OpenClipLoader())


def _download_failure(model_name: str, tag: str, error: Exception) -> str:
    """One line: which weights, where from, why not, and how to run without a network."""
    import open_clip

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
    error before it raises a failed download (which `create` reports itself); the hub client
    logs each retry. Keep them off the terminal while a model is built."""
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
