"""`cbd`: Classification by Description (Menon & Vondrick, ICLR 2023), one row per description
set of zeroshot.descriptions: a class's score is the mean cosine of the image with the class's
descriptor texts ("Black-footed Albatross, which is a seabird"), the prediction its argmax.
Descriptors repeated across an LLM's samples count once: CBD scores a class by its *list*.
A control set (describe.controls: WaffleCLIP's random descriptors) is scored draw by draw, its
row the mean and spread over the draws, its explanations and pictures of the first draw.
Its explanations (the descriptors behind each decision, the very numbers the score averages)
are a table, and a few decisions are drawn beside their images, half of them mistakes, as the
paper's figures are; the pictures are of the first description set."""

from __future__ import annotations

from pydantic import Field

from pipeline.config import Section
from pipeline.zeroshot.baselines import BASELINES, Picture, Scored, ZeroShotInputs


class CbdSettings(Section):
    """CBD with each description set (zeroshot.descriptions), and its explanations."""

    top_descriptors: int = Field(5, ge=1, description="per class, in the explanations table "
                                 "and the pictures")
    pictures: int = Field(6, ge=0, description="test images drawn beside their descriptor "
                          "scores")


@BASELINES.register("cbd", settings=CbdSettings)
def score_descriptions(inputs: ZeroShotInputs, settings: CbdSettings) -> list[Scored]:
    """CBD, one row per description set, with the explanations of every test image."""
    from pipeline.zeroshot.explanations import explain
    from pipeline.zeroshot.pictures import explanation_picture
    from pipeline.zeroshot.scoring import description_scores, picture_sample

    rows = []
    for number, (name, drawn) in enumerate(inputs.descriptions.items()):
        texts, *others = drawn.draws()  # a control's first draw is explained, every draw scored
        scores, similarities = description_scores(inputs.test_x, texts.features,
                                                  texts.class_index, len(inputs.class_names))
        why = explain(similarities, texts.class_index, texts.texts, scores, inputs.test_y,
                      inputs.test_ids, inputs.class_names, settings.top_descriptors)
        pictures = []
        if number == 0:  # the first set's decisions are drawn
            correct = (scores.argmax(dim=1) == inputs.test_y).numpy()
            for i in picture_sample(correct, settings.pictures):
                image_id, verdict = int(inputs.test_ids[i]), "right" if correct[i] else "wrong"
                png = explanation_picture(
                    inputs.test_paths[i], why[why["image_id"] == image_id],
                    title=f"{inputs.backbone}, descriptions {name!r}: {verdict}")
                pictures.append(Picture(f"{image_id}.png", png, {
                    "image_id": image_id, "file": f"{image_id}.png", "descriptions": name,
                    "correct": bool(correct[i])}))
        draws = None
        if others:
            draws = [scores] + [description_scores(inputs.test_x, other.features,
                                                   other.class_index, len(inputs.class_names))[0]
                                for other in others]
        rows.append(Scored("cbd", name, len(texts.texts), texts.source, texts.prompt, scores,
                           tables={"explanations": why.assign(descriptions=name)},
                           pictures=pictures, draws=draws))
    return rows
