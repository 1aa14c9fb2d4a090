"""Stage `extract`: encode one image or text set with the frozen CLIP into a feature set.

One DVC stage per set (`extract@<set>`), so new descriptions re-encode only the descriptions.
The output folder persists between runs (`persist: true` in dvc.yaml): a killed or failed run
resumes, keeping every finished shard whose inputs and model are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.common import InputError, read_parquet_with_metadata
from stages.common import PARAMS_OPTION, resolve_device, warn_if_long_on_cpu
from stages.layout import (artifact, artifact_option, chosen_descriptions, clip_option,
                           describe_stage, require, shown_path)
from stages.params import ParamsError, load_params

# set name -> (input table, id columns, kind)
FEATURE_SETS = {
    "coco_images": ("coco_images", ["image_id", "split"], "image"),
    "cub_images": ("cub_images", ["image_id", "class_id", "split"], "image"),
    "coco_captions": ("coco_captions", ["image_id", "caption_index"], "text"),
    "reed_captions": ("reed_captions", ["image_id", "caption_index"], "text"),
    "descriptions": ("descriptions", ["class_id", "sample_index", "prompt_id"], "text"),
    "class_prompts": ("cub_classes", ["class_id", "template_index"], "text"),
}


def main(feature_set: str = typer.Argument(..., help=f"One of: {', '.join(FEATURE_SETS)}."),
         index: Path = artifact_option("data", "index", help="Index tables of `data`."),
         descriptions: Path = typer.Option(
             ..., default_factory=chosen_descriptions,
             show_default=f"{shown_path('describe')}/<describe.set>.parquet",
             help="The descriptions the `descriptions` set encodes."),
         clip_dir: Path = clip_option(),
         out: Optional[Path] = typer.Option(
             None, help=f"Folder of the feature set to write. Default: "
             f"{shown_path('extract')}/<feature set>."),
         params: Path = PARAMS_OPTION) -> None:
    """Encode one image or text set with the frozen CLIP into Parquet feature shards."""
    if feature_set not in FEATURE_SETS:
        raise ParamsError(f"unknown feature set {feature_set!r}; choose from "
                          f"{', '.join(FEATURE_SETS)}")
    out = artifact("extract") / feature_set if out is None else out
    settings = load_params(params)
    config = settings.extract
    table_name, id_columns, kind = FEATURE_SETS[feature_set]
    if feature_set == "descriptions":
        source = require(descriptions,
                         made_by=describe_stage(descriptions.stem, settings.describe))
    else:
        source = require(index / f"{table_name}.parquet", made_by="data")
    require(clip_dir, made_by=f"clip@{clip_dir.name}")

    import pandas as pd

    from pipeline.clip import load_clip, seconds_per_input
    from pipeline.features import (ExtractOptions, extract_image_features, extract_text_features,
                                   local_image_batches, token_width)

    device = resolve_device(config.device, "extract.device")
    clip = load_clip(clip_dir, device)
    table, meta = read_parquet_with_metadata(source)
    if feature_set == "class_prompts":
        table = pd.DataFrame([(c, t, template.format(name)) for c, name in
                              zip(table["class_id"], table["class_name"])
                              for t, template in enumerate(config.class_prompts)],
                             columns=["class_id", "template_index", "text"])
    images = config.images
    options = ExtractOptions(
        batch_size=images.batch_size if kind == "image" else config.texts.batch_size,
        num_workers=images.num_workers, device=device, amp=config.amp,
        precision=config.precision, shard_rows=config.shard_rows,
        max_image_pixels=images.max_image_pixels, max_bad_fraction=images.max_bad_fraction,
        decode=images.decode)
    warn_if_long_on_cpu(device, f"extract@{feature_set}", len(table),
                        lambda: seconds_per_input(clip, kind, device), f"{kind}s",
                        "Run it on a GPU machine (extract.device: cuda; README: 'What a run costs')"
                        ", or stop here: finished shards are kept, so a later run resumes.")
    if kind == "text":
        # per-token states for the Q-Former's `text_input: tokens`; class prompts never need them
        tokens = config.texts.tokens and feature_set != "class_prompts"
        if tokens:
            try:
                token_width(clip)
            except InputError as error:
                raise ParamsError(f"extract.texts.tokens: {error}") from None
        result = extract_text_features(clip, table, out, name=feature_set, id_columns=id_columns,
                                       options=options, tokens=tokens)
    else:
        engine = local_image_batches
        if images.engine == "ray":
            from pipeline.features import RayImageEngine

            engine = RayImageEngine(clip_dir, **images.ray.model_dump())
        result = extract_image_features(clip, Path(meta["fgvc.root"]), table, out,
                                        name=feature_set, id_columns=id_columns, options=options,
                                        engine=engine)
    manifest = result.manifest
    skipped = f", {manifest['skipped']} skipped (listed in manifest.json)" if manifest["skipped"] else ""
    with_tokens = (f" + per-token states of width {manifest['token_width']}"
                   if manifest.get("token_width") else "")
    print(f"extract: {manifest['rows']} {feature_set} features of width {manifest['width']}{with_tokens} "
          f"({manifest['precision']}) in {len(manifest['shards'])} shard(s): "
          f"{result.computed_shards} computed, {result.reused_shards} kept from an earlier run"
          f"{skipped}")
