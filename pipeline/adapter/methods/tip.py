"""`tip`: Tip-Adapter, training-free (Zhang et al., ECCV 2022, eq. 5 and 6; reference code
gaopengcuhk/Tip-Adapter), on each budget.

Rule: the cache's keys are the budget's kept image features (unit length), its values their
one-hot labels L; for a unit test feature x,

    logits = 100 * x . T^T + alpha * exp(-beta * (1 - x . K^T)) . L

with T the zero-shot classifier and 100 CLIP's logit scale. alpha (the cache's weight) and
beta (its sharpness) are chosen together by top-1 under cross-validation over the kept images,
each held-out image scored by the cache of the other folds (ties: the first listed alpha, then
the first listed beta); where a class has one image, `fixed_alpha` and `fixed_beta` (beta 1 is the
reference code's `init_beta` in every config; its `init_alpha` varies by dataset, 1 to 5).

Where we differ: the reference searches alpha and beta on the dataset's validation split (and,
in its first release, on the test split: Tip-Adapter issue #11); here only the kept images are
seen. T is the description set's CBD classifier (its class-mean description features), not a
template ensemble, and the cache holds one un-augmented feature per image (the reference
averages 10 augmented views). A class's cache term is a sum over its keys, so under
cross-validation a held-out image sees fewer of them than a test image will (one of two at 2
shots, 3 folds); each held-out class term is scaled by n_c / (the class's keys in the other
folds), so a chosen alpha weighs the cache at test as it did under cross-validation.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import pandas as pd
from pydantic import Field

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.config import Distinct, Section

CACHE_FILE, INFO_FILE = "cache.safetensors", "cache.json"


class TipAdapter(Section):
    """Tip-Adapter's training-free cache of each budget's kept images."""

    alphas: Distinct[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 5.0, 10.0], min_length=1,
        description="cache weights tried, the first preferred on ties")
    betas: Distinct[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1.0, 2.0, 3.5, 5.5, 8.0, 12.0], min_length=1,
        description="cache sharpnesses tried, the first preferred on ties")
    fixed_alpha: float = Field(1.0, ge=0, description="alpha where no image can be held out")
    fixed_beta: float = Field(1.0, gt=0, description="beta where no image can be held out")


@dataclasses.dataclass
class TipCaches:
    """Every run's cache: its keys (a slice of `keys`), their classes, its alpha and beta."""

    zero_shot: object  # (C, D) unit zero-shot class vectors
    keys: object  # (K, D) unit kept-image features of every run, run after run
    key_labels: object  # (K,) their class indices
    starts: list[int]  # run h's keys: keys[starts[h]:starts[h + 1]]
    runs: pd.DataFrame  # alpha and beta per run
    class_ids: list[int]
    fingerprint: dict | None
    what: str = "Tip-Adapter caches"  # the summary's noun (not saved: each method's loader sets it)

    def logits(self, features):
        import torch
        import torch.nn.functional as F

        from pipeline.adapter.few_shot import CLIP_LOGIT_SCALE

        x = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=-1)
        base = CLIP_LOGIT_SCALE * x @ self.zero_shot.T
        out = []
        for h, (alpha, beta) in enumerate(zip(self.runs["alpha"], self.runs["beta"])):
            keys = self.keys[self.starts[h]:self.starts[h + 1]]
            values = F.one_hot(self.key_labels[self.starts[h]:self.starts[h + 1]].long(),
                               len(self.class_ids)).float()
            out.append(base + alpha * torch.exp(-beta * (1 - x @ keys.T)) @ values)
        return torch.stack(out)  # (H, N, C)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        from pipeline.common import atomic_path, write_json, write_parquet

        with atomic_path(Path(folder) / CACHE_FILE) as tmp:
            save_file({"zero_shot": self.zero_shot.cpu().contiguous(),
                       "keys": self.keys.cpu().contiguous(),
                       "key_labels": self.key_labels.cpu().contiguous()}, str(tmp))
        write_parquet(Path(folder) / "runs.parquet", self.runs)
        write_json(Path(folder) / INFO_FILE, {"runs": self.runs["run"].tolist(),
                                              "starts": self.starts, "class_ids": self.class_ids,
                                              "clip_fingerprint": self.fingerprint})

    def summary(self) -> str:
        from pipeline.adapter.few_shot import budget_summary

        return budget_summary(self.runs, self.what)


class HeldOutCaches:
    """Tip-Adapter's cross-validated logits on one budget's kept images (unit x (n, D), classes
    y, folds `fold`): each image under the cache of the other folds' images, each class's cache
    term scaled by n_c / (its keys in the other folds), the weight the class's full cache has at
    test. What every candidate shares (the affinities, the zero-shot logits) is computed once;
    the cache term once per beta, alpha being a plain weight on it."""

    def __init__(self, x, y, fold, zero_shot):
        import torch

        from pipeline.adapter.few_shot import CLIP_LOGIT_SCALE

        self.other = (fold[:, None] != fold[None, :]).to(x.dtype)  # (n, n) the other folds' keys
        self.values = torch.nn.functional.one_hot(y, len(zero_shot)).to(x.dtype)  # (n, C)
        seen = self.other @ self.values  # (n, C) keys of each class in the other folds
        self.scale = self.values.sum(dim=0) / seen.clamp_min(1)
        self.affinity = x @ x.T  # (n, n)
        self.zero_shot = CLIP_LOGIT_SCALE * x @ zero_shot.T  # (n, C)

    def cache(self, beta: float):
        """(n, C) the other folds' cache term at sharpness `beta`, before its weight."""
        import torch

        return (torch.exp(-beta * (1 - self.affinity)) * self.other) @ self.values

    def logits(self, cache, alpha: float):
        """(n, C) logits with `cache` (of `cache(beta)`) weighed by `alpha`."""
        return self.zero_shot + alpha * cache * self.scale


def held_out_logits(x, y, fold, zero_shot, alpha: float, beta: float):
    """(n, C) Tip-Adapter logits of each kept image under one (alpha, beta): `HeldOutCaches`."""
    caches = HeldOutCaches(x, y, fold, zero_shot)
    return caches.logits(caches.cache(beta), alpha)


def val_grid(inputs, part, keys, key_labels, zero_shot, grid):
    """(G,) top-1 % of the budget's val images under Tip-Adapter's logits with cache `keys`
    (classes `key_labels`) at each (alpha, beta) of `grid`; each beta's cache once."""
    import numpy as np
    import torch

    from pipeline.adapter.few_shot import CLIP_LOGIT_SCALE, scored_features

    x = scored_features(inputs, part)
    y = torch.as_tensor(part.val_labels, device=x.device)
    values = torch.nn.functional.one_hot(key_labels.long(), len(zero_shot)).to(x.dtype)
    base, affinity = CLIP_LOGIT_SCALE * x @ zero_shot.T, x @ keys.T
    by_beta = {}
    for b in dict.fromkeys(b for _, b in grid):
        cache = torch.exp(-b * (1 - affinity)) @ values
        by_beta[b] = {a: 100.0 * ((base + a * cache).argmax(dim=1) == y).float().mean().item()
                      for a in dict.fromkeys(a for a, _ in grid)}
    return np.array([by_beta[b][a] for a, b in grid])


def train_tip(inputs, protocol, settings: TipAdapter) -> TipCaches:
    import numpy as np
    import torch

    from pipeline.adapter.few_shot import (budget_images, first_best, kept_features,
                                           map_budgets, run_row, text_prototypes)

    zero_shot = text_prototypes(inputs, "none")
    grid = [(a, b) for a in settings.alphas for b in settings.betas]

    def one(part):
        x = kept_features(inputs, part)
        y = torch.as_tensor(part.labels, device=x.device)
        accuracy = None
        alpha, beta = settings.fixed_alpha, settings.fixed_beta
        if part.val_rows is not None:  # CoOp's val images under the whole cache
            accuracy = val_grid(inputs, part, x, y, zero_shot, grid)
            alpha, beta = grid[first_best(accuracy)]
        elif part.fold is not None:
            caches = HeldOutCaches(x, y, torch.as_tensor(part.fold, device=x.device), zero_shot)
            by_beta = {}  # beta -> {alpha: held-out top-1}
            for b in settings.betas:
                cache = caches.cache(b)
                by_beta[b] = {a: 100.0 * (caches.logits(cache, a).argmax(dim=1) == y)
                              .float().mean().item() for a in settings.alphas}
            accuracy = np.array([by_beta[b][a] for a, b in grid])
            alpha, beta = grid[first_best(accuracy)]
        return x, y, run_row("tip", part, "descriptions", "none", {"alpha": alpha, "beta": beta},
                             accuracy)

    keys, labels, rows = zip(*map_budgets(one, budget_images(inputs, protocol), protocol,
                                          inputs.features.device))
    starts = np.cumsum([0] + [len(y) for y in labels]).tolist()
    return TipCaches(zero_shot, torch.cat(keys), torch.cat(labels).to(torch.int64), starts,
                     pd.DataFrame(list(rows)), inputs.class_ids.tolist(), inputs.fingerprint)


def load_tip(folder: Path, fingerprint: dict | None, what: str = "Tip-Adapter caches") -> TipCaches:
    from safetensors.torch import load_file

    from pipeline.clip.fingerprint import check_same_clip

    info = json.loads((Path(folder) / INFO_FILE).read_text())
    check_same_clip(fingerprint, info.get("clip_fingerprint"), f"the {what} in {folder}",
                    "train them again on this CLIP's features (the `train_adapter` stage)")
    tensors = load_file(str(Path(folder) / CACHE_FILE))
    runs = pd.read_parquet(Path(folder) / "runs.parquet").set_index("run").loc[info["runs"]]
    return TipCaches(tensors["zero_shot"], tensors["keys"], tensors["key_labels"], info["starts"],
                     runs.reset_index(), info["class_ids"], info["clip_fingerprint"], what)


ADAPTER_METHODS.register("tip", settings=TipAdapter, doc=TipAdapter.__doc__)(
    AdapterMethod(train=train_tip, load=load_tip, uses_prior=True))
