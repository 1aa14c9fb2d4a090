"""`linear`: the paper's adapter (SPEC section 2), one fully connected layer on frozen CLIP
image features trained with cross-entropy, for every cell of Table 1 (image ratio x text source
x text mapping x selection x seed), the whole grid trained together as stacked heads
(`pipeline.adapter.heads`).

Where we differ from the paper: features are L2-normalised and the logits scaled (`normalize`,
`logit_scale`; the paper does not say), AdamW with a fixed step count, and optional early
stopping on a class-balanced slice of the train images held out of every run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.config import Distinct, Section

RUNS_FILE, KEPT_FILE, VALIDATED_FILE = "runs.parquet", "kept_images.parquet", "val_images.parquet"


class AdapterEarlyStopping(Section):
    """A class-balanced slice of the train images, held out of every run."""

    val_fraction: float = Field(0.0, ge=0, le=0.5, description="share of each class's train "
                                "images; 0: off (the paper trains on all)")
    eval_every: int = Field(50, ge=1, description="steps between validations of every head")
    patience: int = Field(5, ge=1, description="validations without a better top-1 before a "
                          "head keeps its best")


class LinearAdapter(Section):
    """The paper's linear adapter, every Table-1 cell one stacked head."""

    text_mapping: Distinct[Literal["qformer", "none"]] = Field(
        default_factory=lambda: ["qformer", "none"], min_length=1,
        description="qformer: texts through the Q-Former (the paper) | none: their raw CLIP "
        "text features (the ablation)")
    steps: int = Field(500, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    normalize: bool = Field(True, description="L2-normalise features before the linear layer")
    logit_scale: float = Field(10.0, gt=0)
    early_stopping: AdapterEarlyStopping = Field(default_factory=AdapterEarlyStopping)

    @model_validator(mode="after")
    def _validates_before_the_end(self) -> LinearAdapter:
        every = self.early_stopping.eval_every
        if self.early_stopping.val_fraction > 0 and every >= self.steps:
            raise ValueError(f"early_stopping.eval_every ({every}) must be less than steps "
                             f"({self.steps}), or early stopping never acts")
        return self


@dataclasses.dataclass
class LinearGrid:
    """The trained grid: heads in run order, and what each run trained on."""

    heads: object  # pipeline.adapter.heads.SavedHeads
    runs: pd.DataFrame  # one row per head
    kept: pd.DataFrame | None = None  # (run, image_id): the images each run kept
    validated: pd.DataFrame | None = None  # (run, image_id): the images it was validated on

    @property
    def class_ids(self) -> list[int]:
        return self.heads.info["class_ids"]

    def logits(self, features):
        return self.heads.logits(features)

    def save(self, folder: Path) -> None:
        from pipeline.adapter.heads import save_heads
        from pipeline.common import write_parquet

        save_heads(folder, self.heads.weight, self.heads.bias, self.heads.info)
        write_parquet(Path(folder) / RUNS_FILE, self.runs)
        write_parquet(Path(folder) / KEPT_FILE, self.kept)
        write_parquet(Path(folder) / VALIDATED_FILE, self.validated)

    def summary(self) -> str:
        runs, info = self.runs, self.heads.info
        line = (f"{len(runs)} linear adapters on {int(runs['n_images'].max())} train images "
                f"and up to {int(runs['n_texts'].max())} texts")
        if info["early_stopping"]["val_fraction"] > 0:
            best = runs["best_step"]
            line += (f"; early stopping on {int(runs['n_val'].iloc[0])} held-out images per run:"
                     f" best steps {best.min()}-{best.max()} (median {int(best.median())}), "
                     f"{info['steps_run']} of {info['steps']} steps run")
        return line


def grid_runs(inputs, protocol, settings: LinearAdapter):
    """The runs of Table 1 for these inputs, and the rows each trains on (`RunRows`)."""
    from pipeline.adapter.training_mix import run_rows, table1_runs
    from pipeline.common import InputError

    # Without per-image captions (data.captions: null) the caption column is not trained.
    sources = ("captions", "descriptions") if inputs.has_captions else ("descriptions",)
    runs = table1_runs(protocol.selection, protocol.seeds, tuple(settings.text_mapping), sources)
    parts = [run_rows(run, inputs.table, protocol.descriptions_per_image,
                      settings.early_stopping.val_fraction) for run in runs]
    if not inputs.mapped:  # no Q-Former: the raw texts follow the images directly
        # (an image-only run is marked qformer, as it always was: it reads no text at all)
        if any(run.text_mapping == "qformer" and run.text_source != "none" for run in runs):
            raise ValueError("text_mapping 'qformer' needs inputs with mapped texts")
        images = len(inputs.table.images)
        parts = [dataclasses.replace(part, pool=np.where(part.pool >= images,
                                                         part.pool - inputs.table.texts,
                                                         part.pool)) for part in parts]
    empty = [run.name for run, part in zip(runs, parts) if len(part.pool) == 0]
    if empty:  # 10% of a class of 4 images is none
        raise InputError(f"{len(empty)} run(s) would train on nothing ({', '.join(empty[:5])}): "
                         f"too few training images ({len(inputs.table.images)}) for their image "
                         "ratio")
    return runs, parts


def train_linear(inputs, protocol, settings: LinearAdapter) -> LinearGrid:
    """Every run of the grid as one head of a stacked linear layer."""
    import torch.nn.functional as F

    from pipeline.adapter.heads import EarlyStopping, SavedHeads, train_linear_heads

    runs, parts = grid_runs(inputs, protocol, settings)
    stopping = settings.early_stopping
    features = F.normalize(inputs.features, dim=-1) if settings.normalize else inputs.features
    heads = train_linear_heads(
        features, inputs.labels, [part.pool for part in parts], len(inputs.class_ids),
        steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
        weight_decay=settings.weight_decay, logit_scale=settings.logit_scale,
        seeds=[run.stream_seed for run in runs],
        early_stopping=EarlyStopping([part.val_rows for part in parts], stopping.eval_every,
                                     stopping.patience) if stopping.val_fraction > 0 else None)
    info = {"runs": [run.name for run in runs], "class_ids": inputs.class_ids.tolist(),
            "normalize": settings.normalize, "logit_scale": settings.logit_scale,
            "steps": settings.steps, "steps_run": heads.steps_run,
            "early_stopping": stopping.model_dump(), "clip_fingerprint": inputs.fingerprint}
    table = pd.DataFrame([
        {"run": run.name, "image_ratio": run.image_ratio, "text_ratio": run.text_ratio,
         "text_source": run.text_source, "text_mapping": run.text_mapping,
         "selection": run.selection, "seed": run.seed, "n_images": len(part.kept_ids),
         "n_texts": len(part.pool) - len(part.kept_ids), "n_val": len(part.val_rows),
         "best_step": int(heads.best_step[h]), "stop_step": int(heads.stop_step[h]),
         "val_top1": float(heads.val_top1[h])}
        for h, (run, part) in enumerate(zip(runs, parts))])
    image_ids = inputs.table.images["image_id"].to_numpy()

    def per_run(ids_of) -> pd.DataFrame:  # (run, image_id) rows
        return pd.DataFrame([(run.name, int(i)) for run, part in zip(runs, parts)
                             for i in ids_of(part)], columns=["run", "image_id"])

    return LinearGrid(SavedHeads(heads.weight, heads.bias, info), table,
                      per_run(lambda part: part.kept_ids),
                      per_run(lambda part: image_ids[part.val_rows]))


def load_linear(folder: Path, fingerprint: dict | None) -> LinearGrid:
    """The saved grid, its runs in head order; refuses heads of another CLIP."""
    from pipeline.adapter.heads import load_heads

    heads = load_heads(folder, fingerprint)
    runs = pd.read_parquet(Path(folder) / RUNS_FILE).set_index("run")
    return LinearGrid(heads, runs.loc[heads.info["runs"]].reset_index())


ADAPTER_METHODS.register("linear", settings=LinearAdapter, doc=LinearAdapter.__doc__)(
    AdapterMethod(train=train_linear, load=load_linear,
                  maps_texts=lambda settings: "qformer" in settings.text_mapping))
