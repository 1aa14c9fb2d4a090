"""The offline description backend: sentences from a CUB-style class x attribute matrix.

For users without an API budget, and for the demo. Each class's most frequent attribute values
(one per attribute kind, present in at least `min_percent` of its images) become phrases; each
sample states a different random subset of them in a different sentence frame, as several LLM
completions would.

`wrong_traits` makes a weak set, the way an LLM errs: each stated trait is, with that
probability (seeded), replaced by another value of the same attribute kind (a blue wing for a
red one), so the sentence still reads right but describes the class wrongly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.common import InputError
from pipeline.describe.table import DESCRIPTION_COLUMNS

FRAMES = (
    "The {name} is a bird with {traits}.",
    "A {name} can be recognised by {traits}.",
    "{name}: a bird that has {traits}.",
    "Look for {traits} to identify the {name}.",
    "The {name} typically shows {traits}.",
)


def attribute_phrase(attribute: str) -> tuple[str, str]:
    """CUB attribute name -> (kind, phrase): 'has_wing_color::blue' -> ('wing_color', 'blue wings')."""
    stem, value = attribute.split("::", 1)
    kind = stem.removeprefix("has_")
    value = value.replace("_", " ")
    part = kind.rsplit("_", 1)[0] if "_" in kind else kind
    if kind.endswith("_color"):
        noun = {"primary": "plumage", "wing": "wings"}.get(part, part)
        article = "" if noun in ("plumage", "wings") or noun.endswith("parts") else "a "
        return kind, f"{article}{value} {noun}"
    if kind.endswith("_shape"):
        return kind, f"a {value}-shaped {part}"
    if kind.endswith("_pattern"):
        return kind, f"a {value} {part}"
    if kind == "size":
        return kind, f"a {value} size"
    return kind, f"{value} {part.replace('_', ' ')}"


def _swapped(phrase: str, values: list[str], rng: np.random.Generator) -> str:
    """Another value of the same kind, drawn uniformly (`phrase` itself if it is the only one)."""
    others = [value for value in values if value != phrase]
    return others[rng.integers(len(others))] if others else phrase


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def describe_from_attributes(attributes: pd.DataFrame, classes: pd.DataFrame, *,
                             samples_per_class: int, traits_per_sample: int, min_percent: float,
                             seed: int, wrong_traits: float) -> pd.DataFrame:
    """Descriptions for every class.

    attributes: class_id + one column per attribute (percent of images); classes: class_id,
    class_name. Returns a table with `DESCRIPTION_COLUMNS` (source 'attributes').
    wrong_traits: the probability that a stated trait is swapped for another value of its kind
    (0: none; a kind with one value keeps it).
    """
    names = dict(zip(classes["class_id"], classes["class_name"]))
    columns = [c for c in attributes.columns if c != "class_id"]
    phrases = [attribute_phrase(c) for c in columns]
    values_of: dict[str, list[str]] = {}  # kind -> its phrases, in column order
    for kind, phrase in phrases:
        values_of.setdefault(kind, []).append(phrase)
    rows = []
    for _, row in attributes.iterrows():
        class_id = int(row["class_id"])
        best: dict[str, tuple[float, str]] = {}  # kind -> (percent, phrase) of its top value
        for (kind, phrase), column in zip(phrases, columns):
            percent = float(row[column])
            if percent >= min_percent and percent > best.get(kind, (-1.0, ""))[0]:
                best[kind] = (percent, phrase)
        kinds = {phrase: kind for kind, (_, phrase) in best.items()}
        traits = [phrase for _, phrase in sorted(best.values(), reverse=True)]
        if not traits:
            raise InputError(f"class {class_id} ({names[class_id]}) has no attribute present in "
                             f"at least {min_percent}% of its images: lower "
                             "describe.attributes.min_percent")
        rng = np.random.default_rng([seed, class_id])
        # errors on a stream of their own: a weak set picks the traits the exact one states
        wrong = np.random.default_rng([seed, class_id, 1])
        for sample in range(samples_per_class):
            count = min(len(traits), traits_per_sample)
            chosen = [traits[i] for i in sorted(rng.choice(len(traits), count, replace=False))]
            if wrong_traits:
                chosen = [_swapped(phrase, values_of[kinds[phrase]], wrong)
                          if wrong.random() < wrong_traits else phrase for phrase in chosen]
            frame = FRAMES[sample % len(FRAMES)]
            text = frame.format(name=names[class_id], traits=_join(chosen))
            rows.append((class_id, names[class_id], text[0].upper() + text[1:], "attributes",
                         f"attributes-frame{sample % len(FRAMES)}", sample))
    return pd.DataFrame(rows, columns=DESCRIPTION_COLUMNS)
