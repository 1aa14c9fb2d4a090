"""The bridge from text to image space (the `train_qformer` stage trains it; `train_adapter`
maps texts through it): a BLIP-2 Q-Former from `transformers` that turns a CLIP text feature
(pooled, or per-token states) into a pseudo CLIP image feature.

`model`: the module, its checkpoint and `map_texts`. `training`: the loop, held-out figures and
the stage's entry, `train_on_coco`. `text_inputs`: what it reads per text, kept on the device.
`losses`: the paper's pairwise cosine loss and InfoNCE. `absent`: the record written in its
place without COCO (`data.coco: null`). `settings`: the `train_qformer` params section. Names
load on first use.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "LOSSES": "losses", "qformer_loss": "losses", "QFormerConfig": "model",
    "TextToImageQFormer": "model", "load_qformer": "model", "map_texts": "model",
    "save_qformer": "model", "QFormerModel": "settings", "TrainQFormer": "settings",
    "PooledTexts": "text_inputs", "TextView": "text_inputs", "TokenTexts": "text_inputs",
    "TrainedQFormer": "training", "seconds_per_step": "training", "train_on_coco": "training",
    "train_qformer": "training", "validation_metrics": "training",
    "ABSENT_FILE": "absent", "ABSENT_WHY": "absent", "save_absent": "absent",
    "absent_reason": "absent",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
