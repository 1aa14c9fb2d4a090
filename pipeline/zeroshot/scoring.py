"""Zero-shot scores of images against class texts: CLIP's prompt ensemble and CBD's descriptor
mean, the accuracy of any class scores, and which test images to draw.

CLIP classifies by the cosine of the image with one text embedding per class, the normalised mean
of the class's normalised prompt embeddings (ensembling embeddings, not probabilities). CBD scores
a class by the mean of the image's cosines with the class's descriptor texts, so each descriptor's
share of the score can be shown (`pipeline.zeroshot.explanations`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.common import InputError
from pipeline.evaluate.metrics import class_text_embeddings, topk_accuracy


def _class_index(class_index: np.ndarray | torch.Tensor, num_classes: int,
                 what: str) -> torch.Tensor:
    """The class of each text as a long tensor, or an InputError if one is out of range or a
    class has none (its score would be undefined)."""
    index = torch.tensor(np.asarray(class_index), dtype=torch.long).reshape(-1)  # a copy
    if len(index) and (index.min() < 0 or index.max() >= num_classes):
        raise InputError(f"{what} class indices must lie in 0..{num_classes - 1}, "
                         f"found {int(index.min())}..{int(index.max())}")
    empty = torch.nonzero(torch.bincount(index, minlength=num_classes) == 0).reshape(-1).tolist()
    if empty:
        raise InputError(f"{len(empty)} of {num_classes} classes have no {what}, e.g. class "
                         f"indices {empty[:10]}")
    return index


def ensemble_classifier(text_features: np.ndarray | torch.Tensor,
                        class_index: np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, D): per class, the mean of its L2-normalised text embeddings (M, D), renormalised."""
    index = _class_index(class_index, num_classes, "prompt")
    if len(index) != len(text_features):
        raise InputError(f"{len(text_features)} text embeddings but {len(index)} class indices")
    return class_text_embeddings(text_features, index.numpy(), num_classes)


def cosine_matrix(image_features: np.ndarray | torch.Tensor,
                  text_features: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, M) float32 cosine similarities of N image and M text embeddings."""
    images = F.normalize(torch.as_tensor(image_features, dtype=torch.float32), dim=-1)
    texts = F.normalize(torch.as_tensor(text_features, dtype=torch.float32), dim=-1)
    if images.shape[-1] != texts.shape[-1]:
        raise InputError(f"image embeddings are {images.shape[-1]}-wide but text embeddings "
                         f"{texts.shape[-1]}-wide: they come from different CLIP models")
    return images @ texts.T


def descriptor_class_scores(similarities: torch.Tensor,
                            descriptor_class: np.ndarray | torch.Tensor,
                            num_classes: int) -> torch.Tensor:
    """CBD's score (N, C): for each class, the mean of the image's cosines (N, M) with the class's
    descriptors; `descriptor_class` (M,) gives each descriptor's class."""
    similarities = torch.as_tensor(similarities, dtype=torch.float32)
    index = _class_index(descriptor_class, num_classes, "descriptor")
    if len(index) != similarities.shape[-1]:
        raise InputError(f"{similarities.shape[-1]} descriptor similarities per image but "
                         f"{len(index)} descriptor classes")
    sums = torch.zeros(similarities.shape[0], num_classes).index_add_(1, index, similarities)
    return sums / torch.bincount(index, minlength=num_classes).float()  # (N, C)


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
