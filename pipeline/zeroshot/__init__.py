"""Zero-shot baselines on frozen CLIP features, and CLIP's linear probe (the `zeroshot` stage
uses it).

`templates`: named sets of prompt templates (YAML files or open_clip's lists) and the prompts
they make. `scoring`: CLIP's prompt-ensemble classifier and CBD's descriptor-mean class scores.
`explanations`: the descriptors behind each CBD decision; `pictures` draws them beside the image.
`linear_probe`: CLIP's linear-probe protocol (L2-regularised logistic regression, its strength
chosen on a held-out slice of train).
"""

from pipeline.zeroshot.baselines import (accuracy, description_scores, picture_sample,
                                         template_scores)
from pipeline.zeroshot.explanations import EXPLANATION_COLUMNS, descriptor_phrase, explain
from pipeline.zeroshot.linear_probe import LinearProbe, fit_linear_probe, held_out_mask
from pipeline.zeroshot.pictures import explanation_picture
from pipeline.zeroshot.scoring import cosine_matrix, descriptor_class_scores, ensemble_classifier
from pipeline.zeroshot.templates import (OPEN_CLIP_PREFIX, class_prompts, load_template_set,
                                         template_set_names)

__all__ = ["EXPLANATION_COLUMNS", "LinearProbe", "OPEN_CLIP_PREFIX", "accuracy", "class_prompts",
           "cosine_matrix", "description_scores", "descriptor_class_scores", "descriptor_phrase",
           "ensemble_classifier", "explain", "explanation_picture", "fit_linear_probe",
           "held_out_mask", "load_template_set", "picture_sample", "template_scores",
           "template_set_names"]
