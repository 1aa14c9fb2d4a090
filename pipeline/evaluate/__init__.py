"""Scores on the test split and the held-out slices model selection uses (the `evaluate` stage's
entry is `pipeline.adapter.evaluate_adapters`; the zero-shot baselines score with these too).

`metrics`: top-k accuracy, zero-shot logits and class text embeddings, per-class accuracy and
confusion counts. `splits`: the one class-stratified held-out slice of training images that
every hyper-parameter is chosen on. Names load on first use.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "class_tables": "metrics",
    "class_text_embeddings": "metrics", "confusion_counts": "metrics",
    "per_class_accuracy": "metrics", "topk_accuracy": "metrics", "topk_correct": "metrics",
    "zero_shot_logits": "metrics", "held_out_mask": "splits",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
