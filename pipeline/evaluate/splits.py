"""The one class-stratified held-out slice every model selection uses: the linear probe's
strength, the adapters' early stopping. Test labels are never read here: a slice is drawn from
training images only, so whatever it picks is picked on held-out training data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def round_half_up(x: float | np.ndarray) -> int | np.ndarray:
    """Halves up, and a hair above them (0.3 * 5 = 1.4999999999999998 is 1.5)."""
    return np.floor(np.asarray(x) + 0.5 + 1e-9).astype(np.int64)


def held_out_mask(labels: np.ndarray, fraction: float, seed: int | Sequence[int]) -> np.ndarray:
    """(N,) True for the held-out images: per class, round(fraction * count) of its images
    (halves up), at least 1 and never all of them where it has 2 or more, none where it has 1;
    each class's first ones in a permutation drawn from `seed` (an int or a seed sequence, so
    that callers drawing for different purposes draw independently). fraction in (0, 1)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    classes, index = np.unique(labels, return_inverse=True)  # index: dense class of each image
    counts = np.bincount(index, minlength=len(classes))
    held = np.where(counts >= 2, np.clip(round_half_up(fraction * counts), 1, counts - 1), 0)
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    order = shuffled[np.argsort(index[shuffled], kind="stable")]  # by class, shuffled within
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[index[order]]  # rank within its class
    mask = np.zeros(len(labels), dtype=bool)
    mask[order] = position < held[index[order]]
    return mask
