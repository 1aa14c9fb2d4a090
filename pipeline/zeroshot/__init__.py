"""Zero-shot baselines on frozen CLIP features, and CLIP's linear probe (the `zeroshot` stage).

`baselines`: the registry of baselines (`clip`: prompt ensembles per template set; `cbd`:
Classification by Description per description set, with explanations and pictures;
`linear_probe`: CLIP's protocol). `scoring`: CLIP's prompt-ensemble classifier, CBD's
descriptor-mean class scores, accuracy. `explanations`: the descriptors behind each CBD
decision; `pictures` draws them beside the image. `probe`: L2-regularised logistic regression,
its strength chosen on a held-out slice of train. `run`: the stage's entry, `score_baselines`.
`settings`: the `zeroshot` params section. Names load on first use.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "BASELINES": "baselines", "Scored": "baselines", "TextFeatures": "baselines",
    "ZeroShotInputs": "baselines", "EXPLANATION_COLUMNS": "explanations",
    "descriptor_phrase": "explanations", "explain": "explanations",
    "explanation_picture": "pictures", "LinearProbe": "probe", "fit_linear_probe": "probe",
    "ZeroShotResult": "run", "score_baselines": "run", "accuracy": "scoring",
    "cosine_matrix": "scoring", "description_scores": "scoring",
    "descriptor_class_scores": "scoring", "ensemble_classifier": "scoring",
    "picture_sample": "scoring", "template_scores": "scoring", "Zeroshot": "settings",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
