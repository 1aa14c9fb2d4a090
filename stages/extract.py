"""Stages `extract_<set>@<target>-<backbone>`: encode one feature set of one target with one
backbone's frozen CLIP into <out> = <paths.extract>/<target>/<backbone>/<set>/ (COCO's sets,
which no target reads: `extract_coco_<set>@<backbone>` into <paths.extract>/coco/<backbone>/;
`pipeline.features.sets` lists the sets).

`extract` is the only stage that runs a CLIP encoder: everything after it reads these sets. The
output persists between runs (`persist: true` in dvc.yaml): a killed or failed run resumes,
keeping every finished shard whose inputs and model are unchanged, and a new template or
description set encodes only its own texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.common import InputError
from pipeline.features import FEATURE_SETS
from stages.common import (BACKBONE_ARGUMENT, PARAMS_OPTION, TARGET_OPTION, chosen_backbone,
                           resolve_device, say)
from stages.layout import (artifact, backbone_option, backbone_path, describe_stage, require,
                           set_table, target_option, target_path)
from stages.params import ParamsError, load_params

TEMPLATES = Path("prompts/templates")  # relative to the project root, like dvc.yaml's paths


def main(feature_set: str = typer.Argument(..., help=f"One of: {', '.join(FEATURE_SETS)}."),
         backbone: Optional[str] = BACKBONE_ARGUMENT,
         target: Optional[str] = TARGET_OPTION,
         index: Optional[Path] = target_option("data", help="The target's index tables (`data`; "
                                               "COCO's sets: the folder of COCO's)."),
         descriptions: Optional[Path] = target_option("describe", help="The target's "
                                                      "description sets."),
         templates: Path = typer.Option(TEMPLATES, help="Folder of the template set files."),
         clip_dir: Optional[Path] = backbone_option("clip", help="The resolved CLIP.",
                                                    flag="--clip", target=False),
         out: Optional[Path] = backbone_option("extract", "<feature set>", help="Folder of the "
                                               "feature set to write (COCO's: <extract>/coco/"
                                               "<backbone>/<feature set>)."),
         params: Path = PARAMS_OPTION) -> None:
    """Encode one image or text set (or a folder of named text sets) with the frozen CLIP."""
    from pipeline.features import SetSources, extract_feature_set, load_template_set

    if feature_set not in FEATURE_SETS:
        raise ParamsError(f"unknown feature set {feature_set!r}; choose from "
                          f"{', '.join(FEATURE_SETS)}")
    coco = feature_set.startswith("coco_")  # no target reads COCO
    settings = load_params(params)
    settings = settings if coco else settings.for_target(target)
    target, backbone = settings.target, chosen_backbone(settings.clip, backbone)
    index = index or (artifact("data", "index") if coco else target_path("data", target))
    spec, sources = FEATURE_SETS[feature_set], SetSources(index)
    if spec.table:
        require(index / f"{spec.table}.parquet", made_by="data_coco" if coco else f"data@{target}")
    clip_dir = require(clip_dir or backbone_path("clip", backbone), made_by=f"clip@{backbone}")
    out = out or target_path("extract", "coco" if coco else target, backbone, feature_set)
    stage = f"extract_{feature_set}@{'' if coco else f'{target}-'}{backbone}"
    if spec.kind == "templates":
        try:
            sources = SetSources(index, templates={name: load_template_set(name, templates)
                                                   for name in settings.zeroshot.templates})
        except InputError as error:
            raise InputError(f"zeroshot.templates: {error}") from None
    elif spec.kind == "descriptions":
        adapters = settings.train_adapter.descriptions
        names = dict.fromkeys([*settings.zeroshot.descriptions, adapters,
                               *settings.prior_sets()])
        descriptions = descriptions or target_path("describe", target)
        tables = {name: require(set_table(descriptions, name, settings.describe),
                                made_by=describe_stage(name, settings.describe, target))
                  for name in names}
        sources = SetSources(index, descriptions=tables,
                             token_sets=tuple(dict.fromkeys([adapters, *settings.prior_sets()])))
    device = resolve_device(settings.extract.device, "extract.device")
    results = extract_feature_set(feature_set, clip_dir, out, sources, settings.extract, device,
                                  say=say(stage))
    for name, result in results.items():
        print(f"extract: {result.summary(name)}")
