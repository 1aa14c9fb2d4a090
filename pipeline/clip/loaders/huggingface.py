"""Hugging Face transformers' CLIP and SigLIP models (library `transformers`): a hub id
(openai/clip-vit-base-patch32, google/siglip-base-patch16-224) at a revision (main), or a local
folder in the hub's layout (config.json, the weights, the tokenizer's and the image processor's
files: each one's `save_pretrained`; a local folder ignores the revision).

Source: transformers' `CLIPModel` and `SiglipModel` (huggingface.co/docs/transformers/model_doc/
clip and .../siglip). `clip.model` wraps one so that it encodes like an open_clip model:
`encode_image` is `get_image_features`, `encode_text` is `get_text_features`, both the projected
(B, D) embeddings, not normalised (open_clip's `normalize=False`). Where we differ from them:

- Texts go in without an attention mask. CLIP's text tower is causal and pools at the first end
  token, so the padding after it changes nothing (the same features as with the mask); SigLIP's
  pools at the last position and was trained on `padding="max_length"` without a mask, as its
  docs say to call it. So `tokenize` always pads to the tower's max_position_embeddings, on the
  right, with the tokenizer's own pad id.
- Images are preprocessed by open_clip's eval transform built from the card's `preprocess`
  config (the one our batched device preprocessing reproduces), not by the HF image processor.
  CLIPImageProcessor (shortest edge resized to S, center crop S x S) maps to resize_mode
  "shortest"; SiglipImageProcessor (resized to H x W, no crop) to "squash"; resample 3 bicubic,
  2 bilinear; mean and std are the processor's. The pixels differ from the processor's in two
  ways: the center crop's offset, which HF floors ((excess) // 2) and torchvision's CenterCrop
  (open_clip's, and OpenAI's original CLIP preprocessing) rounds half to even, so where the
  resized long side exceeds S by 3 mod 4 pixels HF's crop sits one pixel earlier; and the
  resize: transformers 5's default "torchvision" backend resizes the uint8 tensor with
  torchvision's antialiased filter, about one 8-bit level from Pillow's (at most one in our
  tests), while its "pil" backend is Pillow's, bit for bit like ours. Processor configs we
  cannot express are refused (a crop smaller than the resize, other filters).
- Weights load in float32 whatever the checkpoint's dtype (transformers 5 defaults to the
  checkpoint's; open_clip's are float32 too; autocast does the rest on CUDA).
- A resolved folder holds the wrapper's state dict (keys `hf.`-prefixed), not an HF checkpoint;
  `card["config"]` rebuilds the architecture and `tokenizer/` holds the tokenizer's files.

SigLIP (model type siglip) fits: its vision tower's attention-pooling head (vision_use_head, on
in every released SigLIP) gives the image embedding and its text head the text one, same width.
Its hub tokenizers are SentencePiece models (SiglipTokenizer) and need the `sentencepiece`
package; `create` says so when it is missing. SigLIP 2 (siglip2: NaFlex patch inputs), other
model types and CLIP towers saved alone (clip_vision_model) are refused.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from pipeline.clip.base import Clip
from pipeline.clip.loaders import CLIP_LIBRARIES
from pipeline.common import InputError

LIBRARY = "transformers"
TOKENIZER_FOLDER = "tokenizer"  # in a resolved folder: the tokenizer's save_pretrained files
FAMILIES = {"clip": ("CLIPConfig", "CLIPModel"), "siglip": ("SiglipConfig", "SiglipModel")}
RESAMPLE = {3: "bicubic", 2: "bilinear"}  # PIL's filter codes, as HF's image processors hold them


class TransformersClip(Clip):
    """A transformers CLIP or SigLIP (`model`: a `TransformersModule`); `tokenizer` is the
    model's own HF tokenizer."""

    def __init__(self, model, preprocess, card: dict, tokenizer):
        super().__init__(model, preprocess, card)
        tokenizer.padding_side = "right"  # real tokens first: their count cuts the states there
        self.tokenizer = tokenizer

    @property
    def context_length(self) -> int:
        return int(self.card["config"]["text_config"]["max_position_embeddings"])

    def tokenize(self, texts):
        import torch

        texts = list(texts)
        if not texts:  # the tokenizer refuses an empty batch
            return (torch.zeros(0, self.context_length, dtype=torch.long),
                    torch.zeros(0, dtype=torch.long))
        batch = self.tokenizer(texts, padding="max_length", max_length=self.context_length,
                               truncation=True, return_tensors="pt")
        # (N, L) ids padded with the tokenizer's own pad id (SigLIP pools at the last position)
        return batch["input_ids"].long(), batch["attention_mask"].sum(dim=1).long()

    def encode_text_states(self, ids):
        return self.model.text_states(ids)

    @property
    def token_width(self) -> int:
        return int(self.card["config"]["text_config"]["hidden_size"])

    def save_files(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(Path(folder) / TOKENIZER_FOLDER))


def __getattr__(name: str):
    """`TransformersModule`, made on first use (it is a torch module, and this module's top
    imports no torch); pickle finds it here by name too."""
    if name == "TransformersModule":
        return _module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _module_class() -> type:
    import torch

    class TransformersModule(torch.nn.Module):
        """A transformers CLIPModel or SiglipModel (`hf`) that encodes like an open_clip model."""

        def __init__(self, hf):
            super().__init__()
            self.hf = hf

        def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, D)
            return _pooled(self.hf.get_image_features(pixel_values=pixels))

        def encode_text(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, D)
            return _pooled(self.hf.get_text_features(input_ids=ids))  # no mask: see the top

        def text_states(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(B, D) features and (B, L, W) final states (after the final layer norm, which
            both towers apply to every position before pooling), from one forward pass."""
            out = self.hf.text_model(input_ids=ids)
            pooled = out.pooler_output  # CLIP: the end token's state; SigLIP: already its head's
            projection = getattr(self.hf, "text_projection", None)  # CLIP's; SigLIP has none
            return (pooled if projection is None else projection(pooled)), out.last_hidden_state

    # importable by name (pickle), like a top-level class
    TransformersModule.__module__, TransformersModule.__qualname__ = __name__, "TransformersModule"
    globals()["TransformersModule"] = TransformersModule
    return TransformersModule


def _pooled(out):
    """(B, D) embeddings from `get_*_features`: a model output in transformers 5 (its
    pooler_output is the projected embedding), a tensor in 4."""
    return out if hasattr(out, "dim") else out.pooler_output


class TransformersLoader:
    """Hugging Face transformers: a CLIPModel or SiglipModel, a hub id at a revision or a
    local folder."""

    def create(self, model: str, pretrained: str | None):
        if pretrained is None:
            raise InputError("library transformers needs pretrained: a revision such as main; "
                             "null means: train an open_clip model here (library open_clip)")
        return _create(str(model), str(pretrained))

    def rebuild(self, card: dict, folder: Path):
        return _rebuild(card, Path(folder))


CLIP_LIBRARIES.register(LIBRARY)(TransformersLoader())


def _create(name: str, revision: str):
    import torch
    import transformers

    source = _source(name)  # a local folder's path (~ expanded), or the hub id
    fetch = functools.partial(_fetch, name=name, revision=revision)
    config = fetch("config", lambda: transformers.AutoConfig.from_pretrained(source,
                                                                              revision=revision))
    family = _family(config.model_type, name)
    model_class = getattr(transformers, FAMILIES[family][1])
    float32 = ({"dtype": torch.float32} if int(transformers.__version__.split(".")[0]) >= 5
               else {"torch_dtype": torch.float32})  # 5 defaults to the checkpoint's dtype
    hf = fetch("weights", lambda: model_class.from_pretrained(source, revision=revision,
                                                              **float32))
    tokenizer = fetch("tokenizer", lambda: transformers.AutoTokenizer.from_pretrained(
        source, revision=revision))
    if tokenizer.pad_token_id is None:
        raise InputError(f"{name}: its tokenizer has no pad token, and texts are padded to the "
                         "text tower's length (SigLIP pools at the last position); set one in "
                         "its tokenizer_config.json (pad_token)")
    processor = fetch("image processor", lambda: transformers.AutoImageProcessor.from_pretrained(
        source, revision=revision))
    card = {
        "library": LIBRARY,
        "model_name": name,
        "pretrained": revision,
        "config": _card_config(hf.config),
        "embed_dim": _embed_dim(hf.config, family, name),
        "preprocess": _preprocess_cfg(processor, hf.config.vision_config, name),
    }
    return _clip(hf.float().eval(), card, tokenizer)


def _card_config(config) -> dict:
    """The whole architecture config (every default written out, so that a later transformers
    with other defaults rebuilds the same model), without where it was read from: the card's
    model_name says that, and a local folder's path would differ between machines."""
    content = json.loads(config.to_json_string(use_diff=False))
    for part in (content, content.get("text_config", {}), content.get("vision_config", {})):
        part.pop("_name_or_path", None)
    return content


def _rebuild(card: dict, folder: Path):
    import transformers

    family = _family(card["config"].get("model_type"), card["model_name"])
    config_class, model_class = (getattr(transformers, n) for n in FAMILIES[family])
    hf = model_class(config_class.from_dict(card["config"]))  # random; load_clip loads ours
    tokenizer_folder = folder / TOKENIZER_FOLDER
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_folder),
                                                               local_files_only=True)
    except (OSError, ValueError) as error:
        raise InputError(f"{tokenizer_folder}: no readable tokenizer ({str(error).strip()[:120]})"
                         ": the folder is corrupt (rerun the `clip` stage, or `dvc checkout`)") \
            from None
    return _clip(hf.float().eval(), card, tokenizer)


def _clip(hf, card: dict, tokenizer):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    preprocess = image_transform_v2(PreprocessCfg(**card["preprocess"]), is_train=False)
    return TransformersClip(_module_class()(hf).eval(), preprocess, card, tokenizer)


def _family(model_type: str | None, name: str) -> str:
    if model_type not in FAMILIES:
        raise InputError(f"{name} is a {model_type!r} model; library transformers loads CLIP "
                         "and SigLIP models (model_type clip or siglip, e.g. openai/clip-vit-"
                         "base-patch32, google/siglip-base-patch16-224): name one of those, or "
                         "use library open_clip for its architectures")
    return model_type


def _embed_dim(config, family: str, name: str) -> int:
    """D: CLIP's projection_dim; SigLIP's image head keeps the vision width, and its text head
    must project to the same width."""
    if family == "clip":
        return int(config.projection_dim)
    if not getattr(config.vision_config, "vision_use_head", True):
        raise InputError(f"{name}: its vision tower has no pooling head (vision_use_head: "
                         "false), so it gives no image embedding; use a full SigLIP model")
    width = int(config.vision_config.hidden_size)
    text = int(getattr(config.text_config, "projection_size", None)
               or config.text_config.hidden_size)
    if text != width:
        raise InputError(f"{name}: its text head projects to {text} and its image head to "
                         f"{width}: the two embeddings must have one width")
    return width


def _preprocess_cfg(processor, vision_config, name: str) -> dict:
    """The HF image processor's eval steps as open_clip's `preprocess_cfg` (see the module's
    docstring for where the pixels differ)."""
    def refuse(what: str):
        return InputError(f"{name}: its image processor ({type(processor).__name__}) {what}, "
                          "which open_clip's eval transform cannot reproduce; library "
                          "transformers takes CLIP's (resize the shortest edge to the crop "
                          "size, center crop) and SigLIP's (resize to the input size) processors")

    code = getattr(processor, "resample", None)
    resample = None if code is None else RESAMPLE.get(int(code))
    if resample is None:
        raise refuse(f"resizes with PIL filter {code} (not bicubic 3 or bilinear 2)")
    factor = getattr(processor, "rescale_factor", 1 / 255)
    if not (processor.do_resize and processor.do_rescale and processor.do_normalize
            and abs(factor - 1 / 255) < 1e-9):
        raise refuse("does not resize, rescale by 1/255 and normalise")
    size = processor.size  # a dict (transformers 4) or a SizeDict (5): both have .get
    crop = processor.crop_size if getattr(processor, "do_center_crop", None) else None
    crop = None if crop is None else (crop.get("height"), crop.get("width"))
    if size.get("shortest_edge") is not None:  # CLIP's: the shortest edge, then a square crop
        edge = size.get("shortest_edge")
        if crop != (edge, edge):
            raise refuse(f"resizes the shortest edge to {edge} and crops "
                         f"{'nothing' if crop is None else '%sx%s' % crop} (not a square of "
                         "that size)")
        mode, (height, width) = "shortest", crop
    elif size.get("height") is not None and size.get("width") is not None:  # SigLIP's
        height, width, mode = size.get("height"), size.get("width"), "squash"
        if crop not in (None, (height, width)):
            raise refuse(f"resizes to {height}x{width} and crops {crop[0]}x{crop[1]}")
    else:
        raise refuse("resizes to neither a shortest edge nor a height and width")
    expected = int(vision_config.image_size)
    if (int(height), int(width)) != (expected, expected):
        raise InputError(f"{name}: its image processor makes {height}x{width} inputs, but its "
                         f"vision tower takes {expected}x{expected}")
    mean, std = (_three(v) for v in (processor.image_mean, processor.image_std))
    return {"size": [int(height), int(width)], "mode": "RGB", "mean": mean, "std": std,
            "interpolation": resample, "resize_mode": mode, "fill_color": 0}


def _three(value) -> list[float]:
    """A processor's mean or std per channel (some give one number for all three)."""
    return [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]


def _source(name: str) -> str:
    """What to load `name` from: a folder (its path, ~ expanded), or the hub id. A name that
    can only be a path (absolute, ./, ~, more than one /) must be a folder."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{name} has no config.json: a transformers model folder holds "
                             "the save_pretrained files of the model, its tokenizer and its "
                             "image processor")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise InputError(f"no folder {name}: library transformers takes a hub id (namespace/"
                         "name) or a folder holding a model's save_pretrained files")
    return name


def _fetch(what: str, load, *, name: str, revision: str):
    """`load()`, its failures as one line: what could not be read, why, and how to fix it."""
    try:
        return load()
    except ImportError as error:  # e.g. SiglipTokenizer without sentencepiece
        reason = next((line for line in str(error).splitlines() if line.strip()), "")
        raise InputError(f"{name}: loading its {what} needs a package that is not installed "
                         f"({reason.strip()[:160]}); install it (SigLIP's tokenizer: pip install "
                         "sentencepiece)") from None
    except OSError as error:  # not downloaded, no such repository or revision, a file missing
        raise InputError(_fetch_failure(what, name, revision, error)) from None
    except ValueError as error:  # files there but unreadable: no model_type, a broken tokenizer
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise InputError(f"{name}: could not read its {what}: {reason}") from None


def _fetch_failure(what: str, name: str, revision: str, error: Exception) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    reason = reason.split(". ")[0].rstrip(".")[:200] + "."  # its first sentence
    if Path(name).expanduser().is_dir():
        return (f"{name}: could not read its {what}: {reason} A transformers model folder "
                "holds the save_pretrained files of the model, its tokenizer and its image "
                "processor")
    if any(type(e).__name__ == "HFValidationError" for e in (error.__cause__, error.__context__)):
        return f"{name!r} is no folder and no Hugging Face hub id (namespace/name): {reason}"
    return (f"could not fetch the {what} of {name} (revision {revision}) from the Hugging Face "
            f"hub: {reason} To run offline, fetch the model once where there is a network "
            f"(hf download {name} --revision {revision}; huggingface-cli download with an "
            "older huggingface_hub), copy the hub cache (~/.cache/huggingface, or $HF_HOME) to "
            "this machine and set HF_HUB_OFFLINE=1; or set the backbone's model "
            "(clip.backbones) to a local folder of its save_pretrained files")
