"""Adapters on frozen CLIP image features, partly trained from text (the `train_adapter` stage
trains them, `evaluate` scores them).

`methods`: the registry of adapter methods (`linear`: the paper's, the Table-1 grid as stacked
heads, `heads`). `inputs`: the one feature table every method trains on (images, and texts
mapped by the Q-Former or raw). `training_mix`: the runs of Table 1 and the rows each trains on.
`selection`: which images a run keeps (class-balanced or global) and the held-out validation
slice. `train`: the `train_adapter` stage's entry, `train_adapters` (each method into its own
folder); `evaluation`: the `evaluate` stage's, `evaluate_adapters` (every trained adapter on the
test images).
`settings`: the `train_adapter` params section. Names load on first use.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "Evaluation": "evaluation", "evaluate_adapters": "evaluation", "EarlyStopping": "heads",
    "SavedHeads": "heads", "TrainedHeads": "heads",
    "head_logits": "heads", "load_heads": "heads", "save_heads": "heads",
    "train_linear_heads": "heads", "AdapterInputs": "inputs", "load_adapter_inputs": "inputs",
    "ADAPTER_METHODS": "methods", "keep_mask": "selection", "validation_mask": "selection",
    "TrainAdapter": "settings", "METHOD_FILE": "methods", "NO_PRIOR": "methods", "TrainedMethods": "train",
    "load_adapters": "methods", "train_adapters": "train", "TEXT_MAPPINGS": "training_mix",
    "Run": "training_mix", "run_pool": "training_mix", "run_rows": "training_mix",
    "table1_runs": "training_mix",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
