"""Scores on the test split (the `evaluate` stage): top-k accuracy of the adapters and of
zero-shot CLIP, per-class accuracy and confusion counts.
"""

from pipeline.evaluate.metrics import (class_tables, class_text_embeddings, confusion_counts,
                                       per_class_accuracy, topk_accuracy, topk_correct,
                                       zero_shot_logits)

__all__ = ["class_tables", "class_text_embeddings", "confusion_counts", "per_class_accuracy",
           "topk_accuracy", "topk_correct", "zero_shot_logits"]
