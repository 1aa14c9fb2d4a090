"""Which training images an adapter keeps as images at a given image ratio (SPEC section 2).

`class_balanced` (the paper): in each class, round(p * n_c) of that class's images are kept.
`global` (Hirano's earlier method): round(p * N) images are kept from the whole training set,
whatever their classes, which skews the class balance at low ratios.

Both draw from one seeded permutation, so the images kept at a lower ratio are a subset of
those kept at a higher one: the curve over ratios varies one thing at a time.

`validation_mask` holds a class-balanced slice of the training images out of every run, for
early stopping; selection then draws from the rest.
"""

from __future__ import annotations

import numpy as np

from pipeline.evaluate.splits import held_out_mask, round_half_up

SELECTIONS = ("class_balanced", "global")


def keep_mask(labels: np.ndarray, image_ratio: float, selection: str, seed: int) -> np.ndarray:
    """Boolean mask over training images: True = kept as an image, False = replaced by text.

    labels: (N,) class ids; image_ratio in [0, 1].
    """
    if not 0.0 <= image_ratio <= 1.0:
        raise ValueError(f"image_ratio must be in [0, 1], got {image_ratio}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    priority = rng.permutation(len(labels))  # priority[i]: rank of image i in the draw
    rank = np.empty(len(labels), dtype=np.int64)
    rank[priority] = np.arange(len(labels))
    mask = np.zeros(len(labels), dtype=bool)
    if selection == "global":
        mask[np.argsort(rank)[:round_half_up(image_ratio * len(labels))]] = True
    elif selection == "class_balanced":
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            keep = round_half_up(image_ratio * len(members))
            mask[members[np.argsort(rank[members])[:keep]]] = True
    else:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    return mask


_VALIDATION_STREAM = 0x76616C  # "val": the held-out draw is independent of the keep draw


def validation_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over training images: True = held out for validation, used by no run: the
    class-stratified slice of `pipeline.evaluate.splits`, drawn on its own stream of `seed`."""
    return held_out_mask(labels, fraction, [seed, _VALIDATION_STREAM])
