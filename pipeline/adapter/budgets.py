"""The image budgets of the few-shot protocol, and the folds its model selection uses.

A budget is either the paper's ratio (percent of each class's training images, SPEC section 2)
or the field's k shots (k images per class: the CoOp / Tip-Adapter protocol, k in 1, 2, 4, 8,
16). Both keep, in each class, the first images of one seeded permutation: ratios by the
paper's class-balanced selection (`pipeline.adapter.selection`), shots from their own stream
of the seed. So a smaller budget's images are a subset of a larger one's of the same kind at
the same seed (shots within shots, ratios within ratios). A class with fewer than k images
keeps all of them.

Model selection sees only the kept images (`folds`): every hyper-parameter is chosen by
stratified k-fold cross-validation over them, never on test images (the test split is not
even loaded here). Where a budget leaves a class a single image, no fold can hold one out:
the method then takes its published default, and says so in its runs table.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.adapter.selection import keep_mask

_SHOT_STREAM = 0x73686F74  # "shot": the k-shot draw is its own stream of the seed
_FOLD_STREAM = 0x666F6C64  # "fold"


@dataclasses.dataclass(frozen=True)
class Budget:
    """One cell of the protocol: `shots` images per class, or `ratio` percent of each class's."""

    seed: int
    shots: int | None = None
    ratio: int | None = None

    def __post_init__(self):
        if (self.shots is None) == (self.ratio is None):
            raise ValueError("a budget is either shots or a ratio")

    @property
    def name(self) -> str:
        size = f"shots{self.shots:02d}" if self.shots is not None else f"img{self.ratio:03d}"
        return f"{size}-s{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.shots}-shot" if self.shots is not None else f"{self.ratio}%"


def budget_list(ratios: list[int], ratio_seeds: list[int], shots: list[int],
                shot_seeds: list[int]) -> list[Budget]:
    """Every budget, ratios (descending) then shots (ascending), each over its seeds."""
    return ([Budget(seed, ratio=r) for r in sorted(ratios, reverse=True) for seed in ratio_seeds]
            + [Budget(seed, shots=k) for k in sorted(shots) for seed in shot_seeds])


def kept_images(labels: np.ndarray, budget: Budget) -> np.ndarray:
    """Indices (ascending) of the training images `budget` keeps; labels: (N,) classes."""
    labels = np.asarray(labels)
    if budget.ratio is not None:
        return np.flatnonzero(keep_mask(labels, budget.ratio / 100.0, "class_balanced",
                                        budget.seed))
    rng = np.random.default_rng([budget.seed, _SHOT_STREAM])
    order = rng.permutation(len(labels))
    kept = [order[labels[order] == c][:budget.shots] for c in np.unique(labels)]
    return np.sort(np.concatenate(kept))


def folds(labels: np.ndarray, wanted: int, seed: int) -> np.ndarray | None:
    """(N,) fold of each kept image, stratified: each class's images dealt round-robin over
    min(wanted, the smallest class's count) folds in a seeded order; None where a class has a
    single image (nothing can be held out of it)."""
    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    count = min(wanted, int(counts.min()))
    if count < 2:
        return None
    rng = np.random.default_rng([seed, _FOLD_STREAM])
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = np.arange(len(members)) % count
    return fold
