"""Metrics on the test split: top-k accuracy of adapters and of zero-shot CLIP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(..., N) booleans: is the true label among the k highest logits? logits (..., N, C)."""
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices  # (..., N, k)
    return (top == labels[..., None]).any(dim=-1)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k accuracy in percent, per leading index: logits (..., N, C) -> (...)."""
    return 100.0 * topk_correct(logits, labels, k).float().mean(dim=-1)


def class_text_embeddings(text_features: np.ndarray, class_index: np.ndarray,
                          num_classes: int) -> torch.Tensor:
    """One zero-shot classifier row per class: the mean of the class's *normalised* prompt
    embeddings (CLIP's prompt ensembling averages embeddings, not probabilities), renormalised."""
    feats = F.normalize(torch.as_tensor(text_features, dtype=torch.float32), dim=-1)
    index = torch.tensor(np.asarray(class_index), dtype=torch.long)  # a copy: may be read-only
    sums = torch.zeros(num_classes, feats.shape[1]).index_add_(0, index, feats)
    if (torch.bincount(index, minlength=num_classes) == 0).any():
        raise ValueError("every class needs at least one prompt")
    return F.normalize(sums, dim=-1)


def zero_shot_logits(image_features: np.ndarray, class_embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image with each class's text embedding: (N, C)."""
    images = F.normalize(torch.as_tensor(image_features, dtype=torch.float32), dim=-1)
    return images @ class_embeddings.T


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Top-1 accuracy in percent of each class, per head: logits (H, N, C) -> (H, C).
    A class without test images gets NaN."""
    correct = (logits.argmax(dim=-1) == labels).float()  # (H, N)
    hits = torch.zeros(correct.shape[0], num_classes).index_add_(1, labels, correct)
    counts = torch.bincount(labels, minlength=num_classes).float()
    return 100.0 * hits / counts  # NaN where counts == 0


def confusion_counts(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion matrices, per head: (H, C_true, C_predicted) counts of test images."""
    predicted = logits.argmax(dim=-1)  # (H, N)
    cells = labels[None, :] * num_classes + predicted  # (H, N) flat (true, predicted) cell
    counts = torch.zeros(predicted.shape[0], num_classes * num_classes, dtype=torch.long)
    counts.scatter_add_(1, cells, torch.ones_like(cells))
    return counts.view(-1, num_classes, num_classes)


def class_tables(logits: torch.Tensor, labels: torch.Tensor, run_names: list[str],
                 class_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class top-1 and confusion counts of every run (logits (H, N, C)), long format:
    (run, class_id, test_images, top1) and (run, true_class_id, predicted_class_id, count), the
    latter without its zero cells."""
    num_classes = len(class_ids)
    accuracy = per_class_accuracy(logits, labels, num_classes).numpy()  # (H, C)
    counts = torch.bincount(labels, minlength=num_classes).numpy()
    per_class = pd.DataFrame({
        "run": np.repeat(run_names, num_classes), "class_id": np.tile(class_ids, len(run_names)),
        "test_images": np.tile(counts, len(run_names)), "top1": accuracy.reshape(-1)})
    confusion = confusion_counts(logits, labels, num_classes).numpy()  # (H, C, C)
    head, true, predicted = np.nonzero(confusion)
    return per_class, pd.DataFrame({
        "run": np.asarray(run_names)[head], "true_class_id": class_ids[true],
        "predicted_class_id": class_ids[predicted], "count": confusion[head, true, predicted]})
