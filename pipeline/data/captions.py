"""Caption writers of the demo world: COCO-style scene captions and Reed-style bird captions.

Both describe the attributes an image really shows, each mentioning a random subset of them in
varied wording, as five (COCO) or ten (Reed) people would.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.bird_attributes import GENUS_BY_BILL

SCENE_PHRASES = {
    "sky": ("flying in the sky", "against a blue sky", "in flight"),
    "forest": ("in a forest", "on a branch", "among green leaves"),
    "beach": ("on a beach", "on the sand", "by the sea shore"),
    "water": ("over the water", "on a lake", "near the water"),
    "snow": ("in the snow", "on a snowy field", "in winter"),
}
BILL_PHRASES = {
    "cone": ("a cone-shaped bill", "a thick conical bill", "a short thick bill"),
    "hooked": ("a hooked bill", "a curved hooked beak", "a hooked beak"),
    "long": ("a long thin bill", "a long bill", "a long pointed beak"),
    "short": ("a short pointed bill", "a small thin bill", "a tiny beak"),
}
PATTERN_PHRASES = {
    "solid": ("a plain breast", "no markings on its belly", "a solid coloured breast"),
    "striped": ("a striped breast", "stripes on its belly", "streaks on its breast"),
    "spotted": ("a spotted breast", "spots on its belly", "a speckled breast"),
}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "medium": ("medium-sized", "mid-sized"),
              "large": ("large", "big")}


def _pick(rng: np.random.Generator, options) -> str:
    return str(options[int(rng.integers(len(options)))])


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _trait_phrases(attrs: dict[str, str], rng: np.random.Generator) -> dict[str, str]:
    """One wording for each attribute, as a 'with ...' complement."""
    return {
        "head": _pick(rng, (f"a {attrs['head']} head", f"a {attrs['head']} crown")),
        "body": _pick(rng, (f"a {attrs['body']} body", f"{attrs['body']} plumage")),
        "wing": _pick(rng, (f"{attrs['wing']} wings", f"{attrs['wing']} wing feathers")),
        "bill": _pick(rng, BILL_PHRASES[attrs["bill"]]),
        "pattern": _pick(rng, PATTERN_PHRASES[attrs["pattern"]]),
    }


def coco_caption(attrs: dict[str, str], scene: str, rng: np.random.Generator) -> str:
    """One COCO-style caption: a noun phrase, a few traits, maybe the scene."""
    traits = _trait_phrases(attrs, rng)
    noun = GENUS_BY_BILL[attrs["bill"]].lower() if rng.random() < 0.4 else "bird"
    adjectives = []
    if rng.random() < 0.6:
        adjectives.append(_pick(rng, SIZE_WORDS[attrs["size"]]))
    if rng.random() < 0.35:
        adjectives.append(f"{attrs['head']}-headed")
        traits.pop("head")
    if rng.random() < 0.5:
        adjectives.append(attrs["body"])
        traits.pop("body")
    kinds = list(traits)
    chosen = [traits[k] for k in rng.choice(kinds, size=min(len(kinds), int(rng.integers(2, 5))),
                                            replace=False)]
    lead = _pick(rng, ("a photo of a", "a", "a picture of a", "there is a", "close-up of a"))
    text = f"{lead} {' '.join(adjectives + [noun])} with {_join(chosen)}"
    if rng.random() < 0.6:
        text += " " + _pick(rng, SCENE_PHRASES[scene])
    return text.replace(" a a", " an a").replace(" a o", " an o") + "."


def reed_caption(attrs: dict[str, str], rng: np.random.Generator) -> str:
    """One Reed-style caption ('this bird has ...'), naming three to five traits."""
    traits = _trait_phrases(attrs, rng)
    kinds = list(traits)
    chosen = [traits[k] for k in rng.choice(kinds, size=int(rng.integers(3, 6)), replace=False)]
    lead = _pick(rng, ("this bird has", "this is a bird with", "the bird has",
                       f"this {_pick(rng, SIZE_WORDS[attrs['size']])} bird has", "a bird with"))
    return f"{lead} {_join(chosen)}."
