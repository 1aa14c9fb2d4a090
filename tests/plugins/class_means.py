"""An adapter method from outside the library: `class_means`, one prototype classifier per run
of the protocol, each class's weight the mean of the run's kept images of that class."""

import dataclasses
import json
from pathlib import Path

from pipeline.adapter.methods import ADAPTER_METHODS, AdapterMethod
from pipeline.config import Section


class ClassMeans(Section):
    """Nearest class mean over each run's kept images (image-only runs)."""


@dataclasses.dataclass
class Prototypes:
    weight: object  # (H, C, D)
    runs: object  # one row per head
    class_ids: list

    def logits(self, features):
        import torch.nn.functional as F

        return F.normalize(features, dim=-1) @ self.weight.transpose(1, 2)  # (H, N, C)

    def save(self, folder):
        from safetensors.torch import save_file

        from pipeline.common import write_parquet

        Path(folder).mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight.contiguous()}, str(Path(folder) / "weight.safetensors"))
        write_parquet(Path(folder) / "runs.parquet", self.runs)
        (Path(folder) / "classes.json").write_text(json.dumps(self.class_ids))

    def summary(self):
        return f"{len(self.runs)} prototype classifiers"


def train(inputs, protocol, settings):
    import numpy as np
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from pipeline.adapter.training_mix import run_pool, table1_runs

    runs = table1_runs(protocol.selection, protocol.seeds, ("qformer",), ())
    features = F.normalize(inputs.features, dim=-1)
    labels, classes = inputs.labels, len(inputs.class_ids)
    weights = []
    for run in runs:
        rows = torch.as_tensor(run_pool(run, inputs.table, protocol.descriptions_per_image)[0])
        weights.append(torch.stack([features[rows[labels[rows] == c]].mean(dim=0)
                                    for c in range(classes)]))
    table = pd.DataFrame([{"run": r.name, "image_ratio": r.image_ratio, "text_ratio": r.text_ratio,
                           "text_source": r.text_source, "text_mapping": r.text_mapping,
                           "selection": r.selection, "seed": r.seed} for r in runs])
    return Prototypes(F.normalize(torch.stack(weights), dim=-1), table,
                      np.asarray(inputs.class_ids).tolist())


def load(folder, fingerprint):
    import pandas as pd
    from safetensors.torch import load_file

    return Prototypes(load_file(str(Path(folder) / "weight.safetensors"))["weight"],
                      pd.read_parquet(Path(folder) / "runs.parquet"),
                      json.loads((Path(folder) / "classes.json").read_text()))


ADAPTER_METHODS.register("class_means", settings=ClassMeans, doc=ClassMeans.__doc__)(
    AdapterMethod(train=train, load=load))
