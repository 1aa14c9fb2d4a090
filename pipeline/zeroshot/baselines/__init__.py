"""Zero-shot baselines: each module here scores the test images of one backbone from its cached
features (`ZeroShotInputs`), with no training on test labels.

An entry registers itself with `BASELINES.register(<name>, settings=<its section>)` on a function
`score(inputs, settings) -> list[Scored]`: one `Scored` per row of the results table (a variant:
a template set, a description set, ...), with the test images' (N, C) class scores and any
tables or pictures that explain them. Modules here import only light things at their top
(params validation imports them all); the maths is in `pipeline.zeroshot.scoring`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import Registry

BASELINES = Registry("zero-shot baseline", "pipeline.zeroshot.baselines")


@dataclasses.dataclass(frozen=True)
class TextFeatures:
    """One named text set, encoded: its texts' features and each text's class."""

    features: np.ndarray  # (M, D) float32
    class_index: np.ndarray  # (M,) position in the class list
    texts: list[str]
    source: str  # where the texts come from, in a few words ("templates", "backend openai")
    prompt: str  # how they were made ("3 template(s): 'a photo of a {}.' ...", "prompt cbd")
    # (M,) the draw each text belongs to, for a control set of several independent draws
    # (describe.controls: each draw a classifier of its own); None: one set
    draw: np.ndarray | None = None

    def draws(self) -> list[TextFeatures]:
        """Each draw's texts as a set of its own (one draw: this set)."""
        if self.draw is None:
            return [self]
        return [TextFeatures(self.features[self.draw == d], self.class_index[self.draw == d],
                             [t for t, k in zip(self.texts, self.draw) if k == d], self.source,
                             self.prompt) for d in np.unique(self.draw)]


@dataclasses.dataclass(frozen=True)
class ZeroShotInputs:
    backbone: str
    class_names: list[str]  # in class-index order (class ids sorted)
    train_x: np.ndarray  # (N_train, D) image features
    train_y: np.ndarray  # (N_train,) class indices
    test_x: np.ndarray  # (N_test, D)
    test_y: object  # (N_test,) torch long tensor
    test_ids: np.ndarray  # (N_test,) image ids
    test_paths: list[Path]  # each test image's file
    templates: dict[str, TextFeatures]  # zeroshot.templates, by name
    descriptions: dict[str, TextFeatures]  # zeroshot.descriptions, by name (descriptors once each)
    device: str
    val_x: np.ndarray | None = None  # (N_val, D): a CoOp split's val images; None: no val split
    val_y: np.ndarray | None = None  # (N_val,) their class indices


@dataclasses.dataclass
class Picture:
    file: str  # its name in the pictures folder
    png: bytes
    record: dict  # what run.json says of it (image_id, descriptions, correct)


@dataclasses.dataclass
class Scored:
    """One row of the results: a baseline's variant and its test scores."""

    method: str
    variant: str
    texts: int  # texts it scored with (0: none; a control's: one draw's)
    source: str
    prompt: str
    scores: object  # (N_test, C) torch tensor of class scores (of the first draw, if several)
    tables: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)  # name -> table
    pictures: list[Picture] = dataclasses.field(default_factory=list)
    # every draw's scores, where the texts were drawn several times (a control set): the
    # results give their mean and spread
    draws: list | None = None


__all__ = ["BASELINES", "Picture", "Scored", "TextFeatures", "ZeroShotInputs"]
