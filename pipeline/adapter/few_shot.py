"""What the few-shot methods share: their budgets over the training images, the text prototypes
they use as a prior, leak-free model selection, and one saved form for linear classifiers.

Every method of `train_adapter.methods` but the paper's `linear` trains one classifier per
budget of `train_adapter.budgets` (k shots or a ratio, each over its seeds; `budgets`). A
method's hyper-parameters are chosen by `cross_validate`: stratified folds over the budget's
kept images only, so the test split cannot reach a choice (it is not even in `AdapterInputs`).
A budget that leaves a class one image takes the value fixed in advance in the method's
settings (its published default where the paper gives one), recorded in the runs table
(`selected_by`).

With a CoOp split (the training table has a val part), CoOp's rule replaces cross-validation
(Zhou et al., CoOp `datasets/oxford_pets.py`: `generate_fewshot_dataset(val, num_shots=min(
num_shots, 4))`): a k-shot budget is validated on min(k, 4) val images per class, drawn as its
shots are (the same seed and stream, `budgets.kept_images`), a ratio budget on every val image;
each candidate is fitted on all the kept images and scored there (`BudgetImages.val_rows`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.adapter.budgets import Budget, budget_list, folds, kept_images
from pipeline.common import InputError, write_parquet

RUNS_FILE = "runs.parquet"
CLIP_LOGIT_SCALE = 100.0  # CLIP's learned temperature, as zero-shot CLIP applies it


@contextlib.contextmanager
def denormals_flushed():
    """CPU float arithmetic with subnormal numbers flushed to zero inside, torch's default (off)
    after. Trained to convergence, softmax probabilities and cache terms of the wrong classes
    sink below float32's normal range, and the CPU then computes with them many times slower:
    LP++'s steps on CUB's 100% budget ran 226 ms each, 75 ms flushed, the same weights. The
    difference is below 1e-38 a number: nothing a classifier's argmax can see. The flag is the
    calling thread's: with `train_adapter.cpu_threads: 1` (the default) all the arithmetic is
    flushed; torch's other intra-op threads are not."""
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


def protocol_budgets(protocol) -> list[Budget]:
    """The budgets of a `TrainAdapter` section: its ratios and its shots, each over
    `budgets.seeds` (the paper's linear grid keeps `train_adapter.seeds`)."""
    b = protocol.budgets
    return budget_list(b.ratios, b.seeds, b.shots, b.seeds)


@dataclasses.dataclass(frozen=True)
class BudgetImages:
    """A budget's training images: rows of the adapter table, their classes, their folds."""

    budget: Budget
    rows: np.ndarray  # rows of AdapterInputs.features (image rows come first)
    labels: np.ndarray  # (n,) class indices
    fold: np.ndarray | None  # (n,) fold of each, or None: too few images to hold one out
    val_rows: np.ndarray | None = None  # rows of the val images to choose on (CoOp's rule);
    val_labels: np.ndarray | None = None  # their classes; None: no val part, folds as above

    @property
    def scored_labels(self) -> np.ndarray:
        """The classes of the images candidates are scored on: the val images', or the kept
        images' (each under the heads of the other folds)."""
        return self.labels if self.val_rows is None else self.val_labels


def budget_images(inputs, protocol) -> list[BudgetImages]:
    """Each budget's kept images, in `protocol_budgets` order."""
    labels = inputs.table.images["class_index"].to_numpy()
    train = inputs.table.train_rows  # a val part (CoOp's) is never a budget's
    out = []
    for budget in protocol_budgets(protocol):
        rows = train[kept_images(labels[train], budget)]
        if len(np.unique(labels[rows])) < len(inputs.class_ids):
            raise InputError(f"budget {budget.label} (seed {budget.seed}) keeps no image of some "
                             "class: too few training images for train_adapter.budgets.ratios")
        if inputs.table.val is None:
            out.append(BudgetImages(budget, rows, labels[rows],
                                    folds(labels[rows], protocol.budgets.folds, budget.seed)))
        else:
            val = coop_val_rows(labels, inputs.table.val, budget)
            out.append(BudgetImages(budget, rows, labels[rows], None, val, labels[val]))
    return out


def map_budgets(train_one, parts: list[BudgetImages], protocol, device) -> list:
    """[train_one(part) for part in parts]; on the CPU, `train_adapter.cpu_threads` budgets at
    once (0: one per core of torch's default), each worker on one torch thread with subnormals
    flushed (`denormals_flushed`), the largest budgets first. A budget's arithmetic is then
    what one thread computes alone, so every result is the same bits as one budget after
    another on one thread, in any order: the cores are used without splitting small matmuls
    between threads (which runs slower on a busy machine)."""
    workers = protocol.cpu_threads or torch.get_num_threads()
    if workers <= 1 or len(parts) <= 1 or torch.device(device).type != "cpu":
        return [train_one(part) for part in parts]
    from concurrent.futures import ThreadPoolExecutor

    def one_thread() -> None:  # a worker's own state, gone with it
        torch.set_num_threads(1)
        torch.set_flush_denormal(True)

    threads = torch.get_num_threads()
    largest_first = sorted(range(len(parts)), key=lambda i: -len(parts[i].rows))
    try:
        with ThreadPoolExecutor(min(workers, len(parts)), initializer=one_thread) as pool:
            started = {i: pool.submit(train_one, parts[i]) for i in largest_first}
            return [started[i].result() for i in range(len(parts))]
    finally:
        torch.set_num_threads(threads)  # a worker's setting is also torch's global one


def coop_val_rows(labels: np.ndarray, val: np.ndarray, budget: Budget) -> np.ndarray:
    """Rows of the val images a budget is validated on: min(k, 4) a class for k shots (CoOp's
    rule, drawn as shots are at the budget's seed), every one for a ratio."""
    rows = np.flatnonzero(val)
    if budget.shots is None:
        return rows
    return rows[kept_images(labels[rows], Budget(budget.seed, shots=min(budget.shots, 4)))]


def val_logits(inputs, part: BudgetImages, strengths: torch.Tensor,
               priors: torch.Tensor | None, max_iter: int) -> torch.Tensor:
    """(K, m, C) logits of the budget's val images under each of K candidate probes (as in
    `out_of_fold_logits`: L2 `strengths` (K,), pulled toward `priors` (K, C, D) or zeros), each
    fitted on all the kept images, warm-started from the previous candidate's solution where
    both share a prior."""
    from pipeline.adapter.logistic import fit_logistic_heads

    x = kept_features(inputs, part)
    y = torch.as_tensor(part.labels, device=x.device)
    scored, everything = scored_features(inputs, part), torch.ones(1, len(x), device=x.device)
    out, solution = [], None
    for k in range(len(strengths)):
        if k and priors is not None and not torch.equal(priors[k], priors[k - 1]):
            solution = None
        solution = fit_logistic_heads(x, y, everything, len(inputs.class_ids),
                                      strengths[k:k + 1],
                                      None if priors is None else priors[k:k + 1],
                                      start=solution, max_iter=max_iter)
        out.append(scored @ solution[0][0].T + solution[1][0])  # (m, C)
    return torch.stack(out)


def scored_features(inputs, part: BudgetImages) -> torch.Tensor:
    """(m, D) unit features of the images candidates are scored on (`scored_labels`)."""
    if part.val_rows is None:
        return kept_features(inputs, part)
    rows = torch.as_tensor(part.val_rows, device=inputs.features.device)
    return F.normalize(inputs.features.index_select(0, rows).float(), dim=-1)


def text_prototypes(inputs, mapping: str) -> torch.Tensor:
    """(C, D) unit class prototypes from the description set: each class's mean normalised
    description feature, renormalised (CBD's classifier). mapping: "none", the raw CLIP text
    features (a zero-shot classifier); "qformer", the same texts through the Q-Former (pseudo
    image features)."""
    from pipeline.evaluate.metrics import class_text_embeddings

    table = inputs.table
    count = len(table.descriptions)
    if mapping == "qformer" and not inputs.mapped:
        raise ValueError("these inputs were loaded without a Q-Former: a method mapping its "
                         "prior through it declares so (AdapterMethod.maps_texts)")
    start = (len(table.images) + len(table.captions) if mapping == "qformer"
             else inputs.raw_start + len(table.captions))
    features = inputs.features[start:start + count].cpu()
    classes = table.descriptions["class_index"].to_numpy()
    if len(np.unique(classes)) < len(inputs.class_ids):
        raise InputError("the description set has no description for some class: a text "
                         "prior needs one for every class")
    return class_text_embeddings(features.numpy(), classes, len(inputs.class_ids)).to(
        inputs.features.device)


def out_of_fold_logits(inputs, part: BudgetImages, strengths: torch.Tensor,
                       priors: torch.Tensor | None, max_iter: int) -> torch.Tensor | None:
    """(K, n, C) logits of each kept image under each of K candidate probes (L2 `strengths`
    (K,), pulled toward `priors` (K, C, D) or zeros), each fitted on the other folds' images.
    A candidate's folds are one job, warm-started from the previous candidate's solution where
    both share a prior (list strengths strong to weak: the path to convergence is then short).
    None without folds."""
    from pipeline.adapter.logistic import fit_logistic_heads

    if part.fold is None:
        return None
    x, y = kept_features(inputs, part), torch.as_tensor(part.labels, device=inputs.features.device)
    fold = torch.as_tensor(part.fold, device=x.device)
    count = int(part.fold.max()) + 1
    weights = (fold[None, :] != torch.arange(count, device=x.device)[:, None]).to(x.dtype)
    rows = torch.arange(len(x), device=x.device)
    out, solution = [], None
    for k in range(len(strengths)):
        prior = None if priors is None else priors[k].expand(count, -1, -1)
        if k and priors is not None and not torch.equal(priors[k], priors[k - 1]):
            solution = None
        solution = fit_logistic_heads(x, y, weights, len(inputs.class_ids),
                                      strengths[k].expand(count), prior, start=solution,
                                      max_iter=max_iter)
        weight, bias = solution
        logits = torch.einsum("nd,fcd->fnc", x, weight) + bias[:, None, :]  # (folds, n, C)
        out.append(logits[fold, rows])  # each image under the head that did not see it
    return torch.stack(out)


def fit_on_kept(inputs, part: BudgetImages, strength: float, prior: torch.Tensor | None,
                max_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen probe refitted on all of the budget's kept images: W (C, D), b (C,)."""
    from pipeline.adapter.logistic import fit_logistic_heads

    x = kept_features(inputs, part)
    weight, bias = fit_logistic_heads(
        x, torch.as_tensor(part.labels, device=x.device), torch.ones(1, len(x), device=x.device),
        len(inputs.class_ids), torch.tensor([strength], device=x.device),
        None if prior is None else prior[None], max_iter=max_iter)
    return weight[0], bias[0]


def kept_features(inputs, part: BudgetImages) -> torch.Tensor:
    """(n, D) the budget's kept image features, unit length (the probes' strength grids assume
    this scale)."""
    rows = torch.as_tensor(part.rows, device=inputs.features.device)
    return F.normalize(inputs.features.index_select(0, rows).float(), dim=-1)


def hits(logits: torch.Tensor, part: BudgetImages) -> np.ndarray:
    """(K,) correct top-1 of each candidate's (K, n, C) held-out logits (n: the scored
    images, `BudgetImages.scored_labels`)."""
    labels = torch.as_tensor(part.scored_labels, device=logits.device)
    return (logits.argmax(dim=-1) == labels).sum(dim=-1).cpu().numpy()


def first_best(accuracy: np.ndarray) -> int:
    """The candidate with the best held-out top-1; ties: the first (the grid is ordered from the
    most conservative candidate)."""
    return int(np.flatnonzero(accuracy == accuracy.max())[0])


def run_row(method: str, part: BudgetImages, text_source: str, text_mapping: str,
            chosen: dict, accuracy: np.ndarray | None) -> dict:
    """A runs-table row: the budget, what it trained on, the chosen hyper-parameters
    (`chosen`; {} for a method without any) and how they were chosen (`accuracy`: the
    candidates' cross-validated top-1, None where there were no folds)."""
    budget = part.budget
    if not chosen:
        selected_by = "none to choose"
    elif accuracy is None:
        selected_by = "fixed in advance (a class has one image: none can be held out)"
    elif part.val_rows is not None:
        selected_by = f"{len(part.val_rows)} val images of CoOp's split"
    else:
        selected_by = f"{int(part.fold.max()) + 1}-fold CV on the kept images"
    return {"run": f"{method}-{budget.name}", "budget": budget.label,
            "shots": budget.shots if budget.shots is not None else np.nan,
            "image_ratio": budget.ratio if budget.ratio is not None else np.nan,
            "text_ratio": 0, "text_source": text_source, "text_mapping": text_mapping,
            "selection": "class_balanced", "seed": budget.seed, "n_images": len(part.rows),
            "selected_by": selected_by,
            "cv_top1": float(accuracy.max()) if accuracy is not None else np.nan, **chosen}


@dataclasses.dataclass
class LinearClassifiers:
    """One linear classifier per run: logits = normalise(features) @ W.T + b."""

    weight: torch.Tensor  # (H, C, D)
    bias: torch.Tensor  # (H, C)
    runs: pd.DataFrame
    class_ids: list[int]
    fingerprint: dict | None
    what: str  # the summary's noun: "linear probes"

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=-1)
        return torch.einsum("nd,hcd->hnc", x, self.weight.float()) + self.bias[:, None, :].float()

    def save(self, folder: Path) -> None:
        from pipeline.adapter.heads import save_heads

        save_heads(folder, self.weight.float(), self.bias.float(),
                   {"runs": self.runs["run"].tolist(), "class_ids": self.class_ids,
                    "normalize": True, "logit_scale": 1.0, "what": self.what,
                    "clip_fingerprint": self.fingerprint})
        write_parquet(Path(folder) / RUNS_FILE, self.runs)

    def summary(self) -> str:
        return budget_summary(self.runs, self.what)


def budget_summary(runs: pd.DataFrame, what: str) -> str:
    """'57 linear probes over 19 budgets; cross-validated in 42 runs, fixed in advance in 15'."""
    line = f"{len(runs)} {what} over {runs['budget'].nunique()} budgets"
    by = runs["selected_by"]
    if (by == "none to choose").all():
        return line
    on_val = int(by.str.contains("val images").sum())
    return (f"{line}; cross-validated in {int(by.str.contains('CV').sum())} runs, "
            + (f"chosen on val images in {on_val}, " if on_val else "")
            + f"fixed in advance in {int(by.str.startswith('fixed').sum())}")


def load_linear_classifiers(folder: Path, fingerprint: dict | None) -> LinearClassifiers:
    from pipeline.adapter.heads import load_heads

    heads = load_heads(folder, fingerprint)
    runs = pd.read_parquet(Path(folder) / RUNS_FILE).set_index("run")
    return LinearClassifiers(heads.weight, heads.bias, runs.loc[heads.info["runs"]].reset_index(),
                             heads.info["class_ids"], heads.info.get("clip_fingerprint"),
                             heads.info.get("what", "classifiers"))
