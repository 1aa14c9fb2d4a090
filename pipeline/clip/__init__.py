"""The frozen CLIP (the `clip` stage; every stage after it loads what it wrote).

`loading`: build a model with its library's loader (`loaders`: open_clip, Hugging Face
transformers), pin its weights to safetensors with a card, load it back from that folder alone.
`fingerprint`: what identifies a CLIP's features, its card, and the check wherever an artifact
of one model meets another's. `training`: how the offline demo gets a CLIP at all (a tiny
open_clip model trained contrastively on the demo's captions). `resolve`: the stage's entry.
`settings`: the `clip` params section. Names load on first use: reading a card or the settings
imports no model library.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "FingerprintMismatch": "fingerprint", "check_same_clip": "fingerprint",
    "describe_clip": "fingerprint", "fingerprint_of": "fingerprint", "read_card": "fingerprint",
    "Clip": "base", "create_clip": "loading", "input_size": "loading", "load_clip": "loading",
    "save_clip": "loading", "seconds_per_input": "speed", "train_clip_contrastive": "training",
    "train_demo_clip": "training", "CocoPairs": "resolve", "resolve_clip": "resolve",
    "Backbone": "settings", "ClipSettings": "settings",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
