"""The bridge from text to image space (the `train_qformer` stage trains it; `train_adapter`
maps texts through it): a BLIP-2 Q-Former from `transformers` that turns a CLIP text feature
(pooled, or per-token states) into a pseudo CLIP image feature.

`model`: the module, its checkpoint and `map_texts`. `training`: the loop and held-out figures.
`text_inputs`: what it reads per text, kept on the device. `losses`: the paper's pairwise cosine
loss and InfoNCE.
"""

from pipeline.qformer.losses import LOSSES, qformer_loss
from pipeline.qformer.model import (QFormerConfig, TextToImageQFormer, load_qformer, map_texts,
                                    save_qformer)
from pipeline.qformer.text_inputs import PooledTexts, TextView, TokenTexts
from pipeline.qformer.training import seconds_per_step, train_qformer, validation_metrics

__all__ = ["LOSSES", "PooledTexts", "QFormerConfig", "TextToImageQFormer", "TextView", "TokenTexts",
           "load_qformer", "map_texts", "qformer_loss", "save_qformer", "seconds_per_step",
           "train_qformer", "validation_metrics"]
