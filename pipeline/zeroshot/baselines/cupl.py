"""`cupl`: CuPL's classifier (Pratt et al., "What does a platypus look like? Generating
customized prompts for zero-shot image classification", ICCV 2023; reference code
sarahpratt/CuPL, classify_imagenet.py `zeroshot_classifier_gpt`), one row per real description
set of zeroshot.descriptions: a class's text embedding is the normalised mean of its descriptions'
normalised embeddings, as CLIP ensembles templates, and an image's class the most similar one.

CBD scores the same texts by the *mean cosine* (`cbd`); the two differ by each class's norm of
the mean embedding, so the same set can rank differently. CuPL's published prompt files
(`{class: [sentences]}` JSON, e.g. its all_prompts/full_prompts/bird_prompts_full.json) load
as a description file: `describe.files.<name>: {backend: file, path: bird_prompts_full.json}`.
Control sets (describe.controls) are not scored here: their random strings are CBD's question.

Where we differ: CuPL's evaluation also pools its prompts with CLIP's templates in one
classifier (its "both"); here that is the `clip` baseline's row of the same templates beside it,
not one classifier.
"""

from __future__ import annotations

from pipeline.config import Section
from pipeline.zeroshot.baselines import BASELINES, Scored, ZeroShotInputs


class CuplSettings(Section):
    """CuPL: each real description set as a prompt ensemble (its mean embedding per class)."""


@BASELINES.register("cupl", settings=CuplSettings)
def score_prompt_lists(inputs: ZeroShotInputs, settings: CuplSettings) -> list[Scored]:
    """CuPL, one row per real description set of zeroshot.descriptions."""
    from pipeline.zeroshot.baselines.clip import ensemble_rows

    return ensemble_rows("cupl", inputs, {name: texts for name, texts in
                                          inputs.descriptions.items() if texts.draw is None})
