"""How much does training the adapter grid as stacked heads save? The same heads (same pools,
seeds, steps and batches) trained in one batched job and one after another, timed in one run."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.adapter import train_linear_heads


@dataclasses.dataclass
class AdapterBench:
    heads: int
    steps: int
    batched_seconds: float
    sequential_seconds: float
    max_weight_difference: float  # between the two ways: they must train the same heads

    @property
    def speedup(self) -> float:
        return self.sequential_seconds / self.batched_seconds

    def report(self) -> str:
        return (f"{self.heads} heads x {self.steps} steps\n"
                f"batched     {self.batched_seconds:8.2f} s\n"
                f"sequential  {self.sequential_seconds:8.2f} s\n"
                f"sequential / batched = {self.speedup:.1f}x (goal >= 10x); max |weight "
                f"difference| = {self.max_weight_difference:.2e}")


def bench_adapter(features: torch.Tensor, labels: torch.Tensor, pools: Sequence[np.ndarray],
                  seeds: Sequence, num_classes: int, **training) -> AdapterBench:
    """Time `train_linear_heads` on all pools at once and on each pool alone."""
    def synchronize():
        if features.is_cuda:
            torch.cuda.synchronize()

    train_linear_heads(features, labels, pools[:1], num_classes, seeds=seeds[:1],
                       **dict(training, steps=2), show_progress=False)  # warm-up
    synchronize()
    start = time.perf_counter()
    weight = train_linear_heads(features, labels, pools, num_classes, seeds=seeds,
                                show_progress=False, **training).weight
    synchronize()
    batched = time.perf_counter() - start
    start, difference = time.perf_counter(), 0.0
    for h, (pool, seed) in enumerate(zip(pools, seeds)):
        alone = train_linear_heads(features, labels, [pool], num_classes, seeds=[seed],
                                   show_progress=False, **training).weight
        difference = max(difference, (alone[0] - weight[h]).abs().max().item())
    synchronize()
    return AdapterBench(len(pools), training["steps"], batched, time.perf_counter() - start,
                        difference)
