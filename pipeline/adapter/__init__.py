"""The adapters of Table 1 (the `train_adapter` stage trains them, `evaluate` scores them): one
linear layer on frozen CLIP image features per run, the whole grid trained as stacked heads.

`heads`: the batched training, early stopping, saving and loading. `inputs`: the one feature
table every head trains on (images and Q-Former-mapped texts). `training_mix`: the runs of
Table 1 and the rows each trains on. `selection`: which images a run keeps (class-balanced or
global) and the held-out validation slice.
"""

from pipeline.adapter.heads import (EarlyStopping, SavedHeads, TrainedHeads, head_logits,
                                    load_heads, save_heads, train_linear_heads)
from pipeline.adapter.inputs import AdapterInputs, load_adapter_inputs
from pipeline.adapter.selection import keep_mask, validation_mask
from pipeline.adapter.training_mix import TEXT_MAPPINGS, Run, run_pool, run_rows, table1_runs

__all__ = ["AdapterInputs", "EarlyStopping", "Run", "SavedHeads", "TEXT_MAPPINGS", "TrainedHeads",
           "head_logits", "keep_mask", "load_adapter_inputs", "load_heads", "run_pool", "run_rows",
           "save_heads", "table1_runs", "train_linear_heads", "validation_mask"]
