"""`clip`: CLIP's zero-shot classifier (Radford et al., ICML 2021), one row per template set of
zeroshot.templates: a class's text embedding is the normalised mean of its normalised prompt
embeddings (ensembling embeddings, not probabilities, as CLIP's notebook does); an image's class
is its most similar class embedding."""

from __future__ import annotations

from pipeline.config import Section
from pipeline.zeroshot.baselines import BASELINES, Scored, ZeroShotInputs


class ClipZeroShot(Section):
    """CLIP zero-shot with each template set (zeroshot.templates); no settings of its own."""


@BASELINES.register("clip", settings=ClipZeroShot)
def score_templates(inputs: ZeroShotInputs, settings: ClipZeroShot) -> list[Scored]:
    """CLIP zero-shot, one row per template set."""
    return ensemble_rows("clip", inputs, inputs.templates)


def ensemble_rows(method: str, inputs: ZeroShotInputs, sets: dict) -> list[Scored]:
    """One row of `method` per text set of `sets` (name -> TextFeatures), each scored as CLIP
    scores a prompt ensemble: by the class's mean normalised text embedding, renormalised."""
    from pipeline.zeroshot.scoring import template_scores

    return [Scored(method, name, len(texts.texts), texts.source, texts.prompt,
                   template_scores(inputs.test_x, texts.features, texts.class_index,
                                   len(inputs.class_names)))
            for name, texts in sets.items()]
