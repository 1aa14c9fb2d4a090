"""A zero-shot baseline from outside the library: `nearest_mean` scores each test image by its
cosine with the mean feature of each class's train images (a prototype classifier; not a
zero-shot method, but it needs no stage of its own: that is the point)."""

from pydantic import Field

from pipeline.config import Section
from pipeline.zeroshot.baselines import BASELINES, Scored


class NearestMean(Section):
    """Class prototypes from the train images."""

    temperature: float = Field(1.0, gt=0)


@BASELINES.register("nearest_mean", settings=NearestMean)
def score(inputs, settings):
    """Cosine with each class's mean train feature."""
    import numpy as np

    from pipeline.zeroshot.scoring import cosine_matrix

    classes = len(inputs.class_names)
    means = np.stack([inputs.train_x[inputs.train_y == c].mean(axis=0) for c in range(classes)])
    scores = cosine_matrix(inputs.test_x, means) / settings.temperature
    return [Scored("nearest_mean", "train means", 0, "train images", "class means", scores)]
