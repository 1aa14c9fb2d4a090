"""Control description sets: WaffleCLIP's random descriptors and the shuffled-descriptor
control, made from a real description set (Roth et al., "Waffling around for Performance:
Visual Classification with Random Words and Broad Concepts", ICCV 2023; reference code
ExplainableML/WaffleCLIP, waffle_tools.py `load_gpt_descriptions`).

Each text is built as the reference's `structured_descriptor_builder` builds it,

    "A photo of a " + [concept + ": a "] + class name + ", " + CBD's clause + "."

("A photo of a bird: a Cardinal, which has xkqz, bvpl.") with CBD's descriptor -> clause rule
(`descriptor_sentence`: "which is ...", "which has ..."), and `draws` independent draws of every
set are written (prompt_id `<kind>-draw<k>`), so CBD's score is reported as mean ± std over them.
Kinds, the reference mode each follows in brackets:
- `words`: each class gets its own draw of as many descriptors as its real set has distinct
  texts, each a sequence of random words from WaffleCLIP's word list (shipped:
  waffle_words.txt), as many words as a class name has on average, each cut to the class
  names' mean word length (the words of `waffle`, drawn per class as `adaptive_randomness`
  does; the cut list's duplicates count once);
- `characters`: the same count of random character strings per class
  (`adaptive_random_characters`), drawn from the characters of the real set's words, shaped like
  a class name (its mean word count of groups, together as many characters as its mean longest
  word, rounded up to a multiple of the groups; `waffle`'s shape);
- `waffle`: WaffleCLIP itself: `pairs` pairs of (random words, random characters), one list shared
  by every class (`waffle`);
- `shuffled`: every class takes another class's real texts, that class's name in them (as the
  set writes it: `name_pattern`) replaced by its own (`swapped_descriptions`, here a
  permutation without fixed points, so no class keeps its own texts).

Where we differ: strings come from numpy's seeded generator, not the reference's global numpy
state, so the exact strings differ; `pairs` defaults to half the real set's mean descriptor count
(the same number of texts), where the reference's default is 15 pairs; class names are the
dataset's (CUB's folder names, 57 of which CBD's file writes otherwise), and the real set's texts
keep their own form (CBD's "<class>, which ...", without the reference's "A photo of a "
prefix that its own CBD rows carry).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common import InputError
from pipeline.describe.prompts import descriptor_sentence
from pipeline.describe.table import DESCRIPTION_COLUMNS

WORDS_FILE = Path(__file__).with_name("waffle_words.txt")
# each kind draws from its own stream, its position here: append new kinds, never reorder
KINDS = ("words", "characters", "waffle", "shuffled")
_STREAM = 0x77616666  # "waff": the controls' own stream of describe.seed


@lru_cache(maxsize=1)
def waffle_words() -> tuple[str, ...]:
    """WaffleCLIP's word list, in its order."""
    return tuple(line for line in WORDS_FILE.read_text().splitlines()
                 if line and not line.startswith("#"))


def prompt_prefix(concept: str | None) -> str:
    """WaffleCLIP's label_before_text: "A photo of a ", with a concept "A photo of a bird: a "."""
    return f"A photo of a {concept}: a " if concept else "A photo of a "


def build_text(concept: str | None, class_name: str, descriptor: str) -> str:
    return f"{prompt_prefix(concept)}{descriptor_sentence(class_name, descriptor)}."


class Shapes:
    """What the random strings look like, measured on the class names and the real texts as the
    reference measures them."""

    def __init__(self, class_names: list[str], texts: list[str]):
        names = [name.replace("_", " ") for name in class_names]
        self.words_per_name = max(round(float(np.mean([len(n.split(" ")) for n in names]))), 1)
        word_length = round(float(np.mean([np.mean([len(w) for w in n.split(" ")])
                                           for n in names])))
        self.words = sorted({w[:word_length] for w in waffle_words()})
        self.groups = round(float(np.mean([n.count(" ") for n in names]))) + 1
        chars = math.ceil(float(np.mean([max(len(w) for w in n.split(" ")) for n in names])))
        chars += self.groups - chars % self.groups
        self.group_length = chars // self.groups
        vocabulary = {re.sub(r"[,.]", "", w) for t in texts for w in t.split(" ")}
        self.characters = sorted(set("".join(vocabulary)))
        if not self.characters:
            raise InputError("the real description set has no characters to draw from")

    def random_words(self, rng) -> str:
        return " ".join(rng.choice(self.words, self.words_per_name))

    def random_characters(self, rng) -> str:
        return ", ".join("".join(rng.choice(self.characters, self.group_length))
                         for _ in range(self.groups))


def name_pattern(class_name: str) -> re.Pattern:
    """The dataset's class name as a description set may write it, whole words only: any case,
    hyphens, underscores or spaces between its words, and a possessive's apostrophe ("Black
    footed Albatross" finds "Black-footed Albatross", "Brewers Blackbird" "Brewer's Blackbird";
    "rose" is not found in "rosette"), as the importer matches names (`normalize_name`)."""
    def word(w: str) -> str:
        if len(w) > 1 and w[-1] in "sS":
            return re.escape(w[:-1]) + r"['\u2019]?" + w[-1]
        return re.escape(w) + r"(?:['\u2019]s)?"
    words = [word(w) for w in re.split(r"[\s_\-]+", re.sub(r"['\u2019]", "", class_name)) if w]
    return re.compile(r"(?<!\w)" + r"[\s_\-]+".join(words) + r"(?!\w)", re.IGNORECASE)


def derangement(count: int, rng) -> np.ndarray:
    """A random permutation of range(count) with no fixed point (count >= 2)."""
    while True:
        order = rng.permutation(count)
        if not (order == np.arange(count)).any():
            return order


def control_table(real: pd.DataFrame, classes: pd.DataFrame, kind: str, draws: int,
                  concept: str | None, pairs: int | None, seed: int) -> pd.DataFrame:
    """The control set of `kind` made from `real` (a description table) for `classes`
    (class_id, class_name), `draws` times: a description table (DESCRIPTION_COLUMNS), source
    `control`, prompt_id `<kind>-draw<k>`."""
    if kind not in KINDS:
        raise ValueError(f"unknown control kind {kind!r}")
    real = real.drop_duplicates(["class_id", "text"])
    counts = real.groupby("class_id").size()
    missing = sorted(set(classes["class_id"]) - set(counts.index))
    if missing:
        raise InputError(f"the real description set has no text for classes {missing[:10]}: a "
                         "control replaces each class's texts, so every class needs some")
    if kind == "shuffled" and len(classes) < 2:
        raise InputError("a shuffled control needs two classes or more")
    shapes = Shapes(classes["class_name"].tolist(), real["text"].tolist())
    names = dict(zip(classes["class_id"], classes["class_name"]))
    patterns = {c: name_pattern(name) for c, name in names.items()}
    order = list(classes["class_id"])
    rows = []
    for draw in range(draws):
        rng = np.random.default_rng([seed, _STREAM, KINDS.index(kind), draw])
        prompt_id = f"{kind}-draw{draw}"
        if kind == "waffle":
            count = pairs or max(math.ceil(float(counts.mean()) / 2), 1)
            shared = [d for _ in range(count)
                      for d in (shapes.random_words(rng), shapes.random_characters(rng))]
            texts = {c: [build_text(concept, names[c], d) for d in shared] for c in order}
        elif kind == "shuffled":
            donors = [order[i] for i in derangement(len(order), rng)]
            texts = {c: [patterns[d].sub(lambda _, name=names[c]: name, t) for t in
                         real.loc[real["class_id"] == d, "text"]] for c, d in zip(order, donors)}
        else:
            draw_one = shapes.random_words if kind == "words" else shapes.random_characters
            texts = {c: [build_text(concept, names[c], draw_one(rng)) for _ in range(counts[c])]
                     for c in order}
        rows += [(c, names[c], text, "control", prompt_id, i)
                 for c in order for i, text in enumerate(texts[c])]
    return pd.DataFrame(rows, columns=DESCRIPTION_COLUMNS)
