"""How much does training the adapter grid as stacked heads save? The same heads (same pools,
seeds, steps and batches) trained in one batched job and one after another, timed in one run."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.adapter.heads import train_linear_heads


@dataclasses.dataclass
class AdapterBench:
    heads: int
    steps: int
    batched_seconds: float  # the best of `repeats` timings
    sequential_seconds: float  # the best of `repeats` timings
    max_weight_difference: float  # between the two ways: they must train the same heads
    repeats: int = 1
    sampled_heads: int | None = None  # heads trained one at a time; the rest extrapolated

    def _extrapolated(self) -> str:
        if self.sampled_heads is None:
            return ""
        return f" (extrapolated from {self.sampled_heads} of the {self.heads} heads)"

    @property
    def speedup(self) -> float:
        return self.sequential_seconds / self.batched_seconds

    def report(self) -> str:
        return (f"{self.heads} heads x {self.steps} steps, best of {self.repeats}\n"
                f"batched     {self.batched_seconds:8.2f} s\n"
                f"sequential  {self.sequential_seconds:8.2f} s{self._extrapolated()}\n"
                f"sequential / batched = {self.speedup:.1f}x (goal >= 10x); max |weight "
                f"difference| = {self.max_weight_difference:.2e}")


def bench_grid(inputs, protocol, settings, repeats: int, sample: int | None) -> AdapterBench:
    """`bench_adapter` on the linear grid of `protocol` (train_adapter's section) and `settings`
    (its linear method's) trained on `inputs`, every head training all `steps` (early stopping
    aside)."""
    import torch.nn.functional as F

    from pipeline.adapter.methods.linear import grid_runs

    runs, parts = grid_runs(inputs, protocol, settings)
    features = F.normalize(inputs.features, dim=-1) if settings.normalize else inputs.features
    return bench_adapter(features, inputs.labels, [part.pool for part in parts],
                         [run.stream_seed for run in runs], len(inputs.class_ids),
                         repeats=repeats, sample=sample, steps=settings.steps,
                         batch_size=settings.batch_size, lr=settings.lr,
                         weight_decay=settings.weight_decay, logit_scale=settings.logit_scale)


def bench_adapter(features: torch.Tensor, labels: torch.Tensor, pools: Sequence[np.ndarray],
                  seeds: Sequence, num_classes: int, *, repeats: int, sample: int | None,
                  steps: int, batch_size: int, lr: float, weight_decay: float,
                  logit_scale: float) -> AdapterBench:
    """Time `train_linear_heads` on all pools at once and on each pool alone, `repeats` times
    each, interleaved. The best time of each way is kept (as `timeit` advises): the one least
    disturbed by other work on the machine, which on a shared 2-core box is most of the noise.
    `sample`: train only that many heads (spread over the grid) one at a time, and extrapolate
    their time to all heads, so a preset-size grid's bench stays short."""
    training = dict(steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    logit_scale=logit_scale)

    def synchronize():
        if features.is_cuda:
            torch.cuda.synchronize()

    train_linear_heads(features, labels, pools[:1], num_classes, seeds=seeds[:1],
                       **dict(training, steps=2), show_progress=False)  # warm-up
    chosen = (np.unique(np.linspace(0, len(pools) - 1, sample).round().astype(int))
              if sample and sample < len(pools) else np.arange(len(pools)))
    batched, sequential, difference = [], [], 0.0
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        weight = train_linear_heads(features, labels, pools, num_classes, seeds=seeds,
                                    show_progress=False, **training).weight
        synchronize()
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        for h in chosen:
            alone = train_linear_heads(features, labels, [pools[h]], num_classes,
                                       seeds=[seeds[h]], show_progress=False, **training).weight
            difference = max(difference, (alone[0] - weight[h]).abs().max().item())
        synchronize()
        sequential.append((time.perf_counter() - start) * len(pools) / len(chosen))
    return AdapterBench(len(pools), steps, min(batched), min(sequential),
                        difference, repeats, len(chosen) if len(chosen) < len(pools) else None)
