"""Each baseline scored on the test images: CLIP with one template set, CBD with one description
set, the linear probe. Features come in as arrays (the `zeroshot` stage reads them from the
feature store); every function returns the test images' class scores, so accuracies, per-image
explanations and pictures are all computed from the same numbers."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.evaluate.metrics import topk_accuracy
from pipeline.zeroshot.scoring import cosine_matrix, descriptor_class_scores, ensemble_classifier


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 accuracy in percent of (N, C) class scores."""
    return {"top1": topk_accuracy(scores, labels, 1).item(),
            "top5": topk_accuracy(scores, labels, 5).item()}


def template_scores(images: np.ndarray, prompt_features: np.ndarray, class_index: np.ndarray,
                    num_classes: int) -> torch.Tensor:
    """CLIP zero-shot: (N, C) cosines of each image with each class's ensembled prompt embedding
    (the mean of the class's normalised prompt embeddings, renormalised)."""
    classifier = ensemble_classifier(prompt_features, class_index, num_classes)
    return cosine_matrix(images, classifier)


def description_scores(images: np.ndarray, descriptor_features: np.ndarray,
                       descriptor_class: np.ndarray, num_classes: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """CBD: (N, C) class scores (the mean cosine of the image with the class's descriptors) and
    the (N, M) per-descriptor cosines they average, which explain each decision."""
    similarities = cosine_matrix(images, descriptor_features)
    return descriptor_class_scores(similarities, descriptor_class, num_classes), similarities


def picture_sample(correct: np.ndarray, count: int) -> list[int]:
    """`count` test images to draw, half of them misclassified where there are enough: spread
    evenly over each group, so the same run always draws the same images."""
    wrong, right = np.flatnonzero(~correct), np.flatnonzero(correct)
    take_wrong = min(len(wrong), count // 2 + count % 2)
    take_right = min(len(right), count - take_wrong)
    take_wrong = min(len(wrong), count - take_right)

    def spread(group: np.ndarray, k: int) -> list[int]:
        if not k:
            return []
        return [int(group[i]) for i in np.linspace(0, len(group) - 1, k).round().astype(int)]

    return sorted(spread(wrong, take_wrong) + spread(right, take_right))
