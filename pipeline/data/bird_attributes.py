"""The attribute vocabulary of the demo world's birds, and how classes are made from it.

A class is a distribution over attribute values: one *primary* value per attribute kind, drawn
with a high probability, any other value otherwise (juveniles, moults, odd light). That is what
CUB's `class_attribute_labels_continuous.txt` measures: the percentage of a class's images that
show each attribute value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 35),
    "orange": (240, 130, 20),
    "yellow": (240, 215, 40),
    "green": (40, 150, 50),
    "blue": (35, 80, 210),
    "purple": (125, 45, 160),
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "brown": (120, 75, 35),
    "grey": (130, 130, 130),
}

# Each attribute kind, its CUB-style attribute-name stem and its values.
ATTRIBUTE_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "head": ("has_head_color", tuple(COLOURS)),
    "body": ("has_primary_color", tuple(COLOURS)),
    "wing": ("has_wing_color", tuple(COLOURS)),
    "bill": ("has_bill_shape", ("cone", "hooked", "long", "short")),
    "pattern": ("has_breast_pattern", ("solid", "striped", "spotted")),
    "size": ("has_size", ("small", "medium", "large")),
}

# The probability that an image of a class shows the class's primary value, per kind.
PRIMARY_PROBABILITY: dict[str, float] = {
    "head": 0.94, "body": 0.94, "wing": 0.92, "bill": 0.97, "pattern": 0.85, "size": 0.85,
}

# Bird names read the bill the way real ones do: finches have cone bills, shrikes hooked ones.
GENUS_BY_BILL = {"cone": "Finch", "hooked": "Shrike", "long": "Curlew", "short": "Warbler"}
SIBLING_PREFIXES = ("Northern", "Southern", "Eastern", "Western")


def attribute_names() -> list[str]:
    """All attribute names in CUB's `stem::value` form, in a fixed order (ids are 1-based)."""
    return [f"{stem}::{value}" for stem, values in ATTRIBUTE_KINDS.values() for value in values]


@dataclasses.dataclass(frozen=True)
class BirdClass:
    """One species of the demo world: its name and its primary attribute values."""

    name: str
    primary: dict[str, str]

    def sample(self, rng: np.random.Generator) -> dict[str, str]:
        """Draw the attributes of one individual of this species."""
        drawn = {}
        for kind, (_, values) in ATTRIBUTE_KINDS.items():
            if rng.random() < PRIMARY_PROBABILITY[kind]:
                drawn[kind] = self.primary[kind]
            else:
                drawn[kind] = str(rng.choice([v for v in values if v != self.primary[kind]]))
        return drawn

    def attribute_percentages(self) -> np.ndarray:
        """Expected percentage of images showing each attribute, in `attribute_names()` order."""
        row = []
        for kind, (_, values) in ATTRIBUTE_KINDS.items():
            p = PRIMARY_PROBABILITY[kind]
            other = (1.0 - p) / (len(values) - 1)
            row.extend(100.0 * (p if v == self.primary[kind] else other) for v in values)
        return np.asarray(row)


def make_classes(num_classes: int, seed: int) -> list[BirdClass]:
    """Design `num_classes` species, deterministic in `seed`.

    Species come in groups that share head colour, body colour and bill (so they share a name
    such as "Red-headed Blue Finch") and differ in wing colour, pattern or size, told apart only
    by a prefix that carries no visual meaning ("Northern", "Southern"), like CUB's Western and
    Eastern Meadowlarks. Names alone cannot separate siblings: that is what makes it fine-grained.
    """
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    classes: list[BirdClass] = []
    used_looks: set[tuple[str, ...]] = set()
    used_names: set[str] = set()
    while len(classes) < num_classes:
        head, body = rng.choice(colours, size=2, replace=False)
        bill = str(rng.choice(ATTRIBUTE_KINDS["bill"][1]))
        stem = f"{str(head).capitalize()}-headed {str(body).capitalize()} {GENUS_BY_BILL[bill]}"
        if stem in used_names:
            continue
        used_names.add(stem)
        group = min(int(rng.integers(1, 4)), num_classes - len(classes))
        for index in range(group):
            while True:
                look = {
                    "head": str(head), "body": str(body), "bill": bill,
                    "wing": str(rng.choice([c for c in colours if c not in (head, body)])),
                    "pattern": str(rng.choice(ATTRIBUTE_KINDS["pattern"][1])),
                    "size": str(rng.choice(ATTRIBUTE_KINDS["size"][1])),
                }
                key = tuple(look[k] for k in ATTRIBUTE_KINDS)
                if key not in used_looks:
                    used_looks.add(key)
                    break
            name = stem if group == 1 else f"{SIBLING_PREFIXES[index]} {stem}"
            classes.append(BirdClass(name=name, primary=look))
    return classes
