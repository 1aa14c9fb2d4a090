"""The frozen CLIP (the `clip` stage; every stage after it loads what it wrote).

`loading`: build an open_clip model, pin its weights to safetensors with a card, load it back
from that folder alone. `fingerprint`: what identifies a CLIP's features, and the check wherever
an artifact of one model meets another's. `training`: how the offline demo gets a CLIP at all
(a tiny open_clip model trained contrastively on the demo's captions).
"""

from pipeline.clip.fingerprint import (FingerprintMismatch, check_same_clip, describe_clip,
                                       fingerprint_of)
from pipeline.clip.loading import Clip, create_clip, input_size, load_clip, read_card, save_clip
from pipeline.clip.speed import seconds_per_input
from pipeline.clip.training import train_clip_contrastive, train_demo_clip

__all__ = ["Clip", "FingerprintMismatch", "check_same_clip", "create_clip", "describe_clip",
           "fingerprint_of", "input_size", "load_clip", "read_card", "save_clip",
           "seconds_per_input", "train_clip_contrastive", "train_demo_clip"]
