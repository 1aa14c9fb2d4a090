"""What `train_qformer` writes where there is no Q-Former to train (`data.coco: null`: no
COCO): a record saying so in place of the checkpoint, so that every stage that depends on the
checkpoint folder still finds it, and nothing can mistake it for a trained model.

DVC cannot drop a dependency by params: `train_adapter@<backbone>-<method>` depends on the
checkpoint folder whatever its method, so the folder must exist with or without COCO (as
`extract_target_captions` writes an empty set where the target has no per-image captions).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.common import write_json

ABSENT_FILE = "no_qformer.json"  # in the checkpoint folder, instead of qformer.json
ABSENT_WHY = ("data.coco is null: the Q-Former trains on COCO, so none was trained, and the "
              "adapter columns of texts mapped through it are left out")


def save_absent(folder: Path, fingerprint: dict | None) -> None:
    """The record of no Q-Former in `folder` (its CLIP named, as a checkpoint's is)."""
    write_json(Path(folder) / ABSENT_FILE, {"trained": False, "why": ABSENT_WHY,
                                             "clip_fingerprint": fingerprint})


def absent_reason(folder: Path) -> str | None:
    """Why `folder` holds no Q-Former (its record), or None where it holds none."""
    path = Path(folder) / ABSENT_FILE
    return json.loads(path.read_text()).get("why", ABSENT_WHY) if path.is_file() else None
