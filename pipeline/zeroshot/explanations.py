"""Why CBD chose a class: the descriptors of the predicted class (and, when it was wrong, of the
true class) that matched the image best.

A CBD class score is the plain mean of the image's cosines with the class's descriptors, so the
per-descriptor cosines are an exact decomposition of the decision: the table keeps the cosines
that entered the score, the top ones shown by rank.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch

from pipeline.common import InputError

EXPLANATION_COLUMNS = ["image_id", "role", "class_index", "class_name", "class_score", "rank",
                       "descriptor", "similarity", "correct"]


def _normalized(name: str) -> str:
    """Case, hyphens, underscores and spacing do not matter: 'Black-footed' == 'black footed'."""
    return re.sub(r"[-_\s]+", " ", name).strip().lower()


def descriptor_phrase(text: str, class_name: str) -> str:
    """The descriptor without CBD's leading "<class>, ": "Black-footed Albatross, which is a
    seabird" -> "which is a seabird" (for display); any other text unchanged."""
    head, sep, tail = text.partition(", ")
    if sep and tail and _normalized(head) == _normalized(class_name):
        return tail
    return text


def _class_members(descriptor_class: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, L) descriptor indices of each class, padded with -1 to the largest class's L."""
    order = np.argsort(descriptor_class, kind="stable")
    counts = np.bincount(descriptor_class, minlength=num_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_class = descriptor_class[order]
    position = np.arange(len(order)) - starts[sorted_class]  # rank within its class
    members = np.full((num_classes, max(int(counts.max(initial=0)), 1)), -1, dtype=np.int64)
    members[sorted_class, position] = order
    return members


def explain(similarities: torch.Tensor, descriptor_class: np.ndarray | torch.Tensor,
            descriptor_text: list[str], scores: torch.Tensor, labels: np.ndarray | torch.Tensor,
            image_ids: list | np.ndarray, class_names: list[str], top_k: int) -> pd.DataFrame:
    """One row per (image, role, rank), `EXPLANATION_COLUMNS`: the `top_k` descriptors of the
    predicted class (role "predicted", the argmax of `scores` (N, C)) and, for wrong predictions
    only, of the true class (role "true"), by cosine (`similarities` (N, M)) descending."""
    similarities = torch.as_tensor(similarities, dtype=torch.float32)
    scores = torch.as_tensor(scores, dtype=torch.float32)
    descriptor_class = np.asarray(descriptor_class, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    image_ids = np.asarray(image_ids)
    (n, m), c = similarities.shape, len(class_names)
    if scores.shape != (n, c) or len(labels) != n or len(image_ids) != n:
        raise InputError(f"explain needs as many scores (N, C), labels and image ids as images: "
                         f"similarities {tuple(similarities.shape)}, scores {tuple(scores.shape)}, "
                         f"{len(labels)} labels, {len(image_ids)} image ids, {c} class names")
    if len(descriptor_class) != m or len(descriptor_text) != m:
        raise InputError(f"{m} descriptor similarities per image but {len(descriptor_class)} "
                         f"descriptor classes and {len(descriptor_text)} descriptor texts")
    if m and (descriptor_class.min() < 0 or descriptor_class.max() >= c):
        raise InputError(f"descriptor class indices must lie in 0..{c - 1}, found "
                         f"{descriptor_class.min()}..{descriptor_class.max()}")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise InputError(f"labels must lie in 0..{c - 1}, found {labels.min()}..{labels.max()}")
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")

    predicted = scores.argmax(dim=1).numpy()
    correct = predicted == labels
    wrong = np.flatnonzero(~correct)
    # (P,) the (image, class) pairs to explain: every image's prediction, then the wrong ones' truth
    image = np.concatenate([np.arange(n), wrong])
    cls = np.concatenate([predicted, labels[wrong]])
    role = np.array(["predicted"] * n + ["true"] * len(wrong), dtype=object)

    members = torch.as_tensor(_class_members(descriptor_class, c))[cls]  # (P, L)
    gathered = similarities[torch.as_tensor(image)[:, None], members.clamp(min=0)]  # (P, L)
    gathered = gathered.masked_fill(members < 0, float("-inf"))
    k = min(top_k, members.shape[1])
    values, slots = gathered.topk(k, dim=1)  # (P, k), best first
    keep = torch.isfinite(values).numpy()  # a class with fewer than k descriptors
    pair, rank = np.nonzero(keep)
    descriptor = members.gather(1, slots).numpy()[pair, rank]

    table = pd.DataFrame({
        "image_id": image_ids[image[pair]], "role": role[pair], "class_index": cls[pair],
        "class_name": np.asarray(class_names, dtype=object)[cls[pair]],
        "class_score": scores[torch.as_tensor(image[pair]), torch.as_tensor(cls[pair])].numpy(),
        "rank": rank + 1, "descriptor": np.asarray(descriptor_text, dtype=object)[descriptor],
        "similarity": values.numpy()[pair, rank], "correct": correct[image[pair]]})
    # image by image (in input order), the prediction before the truth, then by rank
    order = np.lexsort((rank, role[pair] == "true", image[pair]))
    return table.iloc[order].reset_index(drop=True)
