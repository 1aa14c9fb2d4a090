"""What each adapter of Table 1 trains on: kept images plus the texts that replace the others.

The training table is one stack of rows, [train images | captions | descriptions], each row a
feature with its class; a run's *pool* is the rows it trains on. Captions are the per-image
captions of the replaced images (Reed et al.'s on CUB), descriptions the class descriptions of
their class (an LLM's, or the demo's attribute sentences). Text rows are Q-Former outputs
(pseudo image features), so every row lives in the CLIP image space; the raw CLIP text features
of the same texts follow, [... | captions, raw | descriptions, raw], for the ablation without the
bridge (`text_mapping: none`): such a run takes the same rows, shifted.

Where the index has a `val` split (a CoOp split file, `pipeline.data.coop_split`), its images
are image rows too, marked by `TrainingTable.val`: the held-out slice, never trained on nor
replaced by texts (their captions are not in the table), used where a slice of train would be
drawn otherwise (early stopping). Without one, the table is train images alone, as before.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pipeline.adapter.selection import keep_mask, validation_mask

TEXT_SOURCES = ("none", "captions", "descriptions")  # the order seeds each run's batches
TEXT_MAPPINGS = ("qformer", "none")  # texts through the Q-Former, or raw CLIP text features


@dataclasses.dataclass(frozen=True)
class Run:
    image_ratio: int  # percent of each class's (or all) training images kept as images
    text_source: str  # none | captions | descriptions
    selection: str  # class_balanced | global
    seed: int
    text_mapping: str = "qformer"  # qformer | none (the ablation: raw CLIP text features)

    @property
    def name(self) -> str:
        source = self.text_source + ("" if self.text_mapping == "qformer" else "_unmapped")
        return f"img{self.image_ratio:03d}-{source}-{self.selection}-s{self.seed}"

    @property
    def stream_seed(self) -> list[int]:
        """Seed of this run's batch order: its own, whatever else trains beside it. A run
        without the Q-Former draws the batches its mapped twin draws: only the features differ."""
        return [self.seed, self.image_ratio, TEXT_SOURCES.index(self.text_source)]

    @property
    def text_ratio(self) -> int:
        return 100 - self.image_ratio


def table1_runs(selections: list[str], seeds: list[int], text_mappings: tuple[str, ...],
                text_sources: tuple[str, ...]) -> list[Run]:
    """The cells of the paper's Table 1: image-only at 100..10%, + captions and + descriptions
    at 90..0%; with text_mappings holding "none", the text columns again on raw CLIP text
    features. text_sources: ("descriptions",) for a dataset without per-image captions."""
    runs = []
    for selection in selections:
        for seed in seeds:
            runs += [Run(r, "none", selection, seed) for r in range(100, 0, -10)]
            runs += [Run(r, src, selection, seed, mapping) for mapping in text_mappings
                     for src in text_sources for r in range(90, -1, -10)]
    return runs


@dataclasses.dataclass
class TrainingTable:
    """Row layout of the stacked training features."""

    images: pd.DataFrame  # image_id, class_index: rows [0, n_images)
    captions: pd.DataFrame  # image_id, class_index: the next rows
    descriptions: pd.DataFrame  # class_index: the last rows
    val: np.ndarray | None = None  # (len(images),) True: a val image (CoOp's); None: none

    @property
    def train_rows(self) -> np.ndarray:
        """Rows of `images` that are training images (all of them without a val part)."""
        return (np.arange(len(self.images)) if self.val is None
                else np.flatnonzero(~self.val))

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([self.images["class_index"], self.captions["class_index"],
                               self.descriptions["class_index"]]).astype(np.int64)

    @property
    def texts(self) -> int:
        return len(self.captions) + len(self.descriptions)


def build_training_table(images: pd.DataFrame, captions: pd.DataFrame,
                         descriptions: pd.DataFrame,
                         class_ids: np.ndarray) -> tuple[TrainingTable, np.ndarray, np.ndarray]:
    """Lay out the training table from feature-set id tables.

    images: image_id, class_id, split (all target images); captions: image_id (all captions);
    descriptions: class_id (all descriptions); class_ids: the classes, in the adapter's output
    order. Returns the table and two boolean masks: the rows of `images` that are its image
    rows (training images, and val images where the split has them) and the rows of
    `captions` that caption training images (the table's row order follows them).
    """
    index_of = {int(c): i for i, c in enumerate(class_ids)}
    is_val = (images["split"] == "val").to_numpy()
    is_train = (images["split"] == "train").to_numpy() | is_val
    train = images.loc[is_train, ["image_id"]].reset_index(drop=True)
    train["class_index"] = images.loc[is_train, "class_id"].map(index_of).to_numpy()
    val = is_val[is_train] if is_val.any() else None
    captioned = train["image_id"] if val is None else train["image_id"][~val]
    captions_train = captions["image_id"].isin(captioned).to_numpy()
    kept_captions = captions.loc[captions_train, ["image_id"]].reset_index(drop=True)
    kept_captions["class_index"] = kept_captions["image_id"].map(
        dict(zip(train["image_id"], train["class_index"])))
    classes = pd.DataFrame({"class_index": descriptions["class_id"].map(index_of).to_numpy()})
    if classes["class_index"].isna().any():
        raise ValueError("descriptions name classes that have no images")
    return TrainingTable(train, kept_captions, classes, val), is_train, captions_train


def run_pool(run: Run, table: TrainingTable, descriptions_per_image: int,
             held_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `table` that `run` trains on, and the ids of the images it keeps.

    held_out: optional boolean mask over `table.images` (a validation slice): those images are
    neither kept nor replaced by their texts; the ratio applies to the rest.
    """
    labels = table.images["class_index"].to_numpy()
    held = np.zeros(len(labels), bool) if held_out is None else np.asarray(held_out, bool)
    rest = np.flatnonzero(~held)  # all images when nothing is held out: the same draw as before
    kept = np.zeros(len(labels), dtype=bool)
    kept[rest[keep_mask(labels[rest], run.image_ratio / 100.0, run.selection, run.seed)]] = True
    replaced = ~kept & ~held
    rows = [np.flatnonzero(kept)]
    replaced_ids = table.images["image_id"].to_numpy()[replaced]
    if run.text_source == "captions":
        offset = len(table.images)
        hit = np.isin(table.captions["image_id"].to_numpy(), replaced_ids)
        rows.append(offset + np.flatnonzero(hit))
    elif run.text_source == "descriptions":
        rows.append(_description_rows(labels[replaced], table, descriptions_per_image))
    elif run.text_source != "none":
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {run.text_source!r}")
    if run.text_mapping == "none":  # the same texts' raw rows, after the mapped ones
        rows[1:] = [r + table.texts for r in rows[1:]]
    elif run.text_mapping != "qformer":
        raise ValueError(f"text_mapping must be one of {TEXT_MAPPINGS}, got {run.text_mapping!r}")
    return np.concatenate(rows), table.images["image_id"].to_numpy()[kept]


@dataclasses.dataclass(frozen=True)
class RunRows:
    pool: np.ndarray  # rows of the table the run trains on
    kept_ids: np.ndarray  # ids of the training images it keeps as images
    val_rows: np.ndarray  # image rows held out to validate it (empty without validation)


def run_rows(run: Run, table: TrainingTable, descriptions_per_image: int,
             val_fraction: float) -> RunRows:
    """A run's pool, kept images and, with val_fraction > 0, its validation images: a
    class-balanced slice drawn from the run's seed, so the runs of one seed share it. Where the
    table has a val part (CoOp's), that is the slice, whatever val_fraction (> 0: validated on;
    0: only held out of training)."""
    if table.val is not None:
        return RunRows(*run_pool(run, table, descriptions_per_image, table.val),
                       np.flatnonzero(table.val) if val_fraction > 0
                       else np.zeros(0, dtype=np.int64))
    if val_fraction == 0:
        return RunRows(*run_pool(run, table, descriptions_per_image), np.zeros(0, dtype=np.int64))
    held = validation_mask(table.images["class_index"].to_numpy(), val_fraction, run.seed)
    return RunRows(*run_pool(run, table, descriptions_per_image, held), np.flatnonzero(held))


def _description_rows(replaced_labels: np.ndarray, table: TrainingTable,
                      per_image: int) -> np.ndarray:
    """`per_image` descriptions of its class for each replaced image, cycling through them."""
    offset = len(table.images) + len(table.captions)
    description_classes = table.descriptions["class_index"].to_numpy()
    rows = []
    for c in np.unique(replaced_labels):
        descriptions = offset + np.flatnonzero(description_classes == c)
        if len(descriptions) == 0:
            raise ValueError(f"class index {c} has no descriptions")
        count = int((replaced_labels == c).sum()) * per_image
        rows.append(descriptions[np.arange(count) % len(descriptions)])
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
