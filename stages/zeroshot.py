"""Stage `zeroshot@<backbone>`: the baselines of the seed papers on one backbone of
`clip.backbones`, scored on the test images. Writes into <out>/<backbone>/:

- results.parquet: one row per baseline: CLIP zero-shot per template set (`zeroshot.templates`),
  CBD per description set (`zeroshot.descriptions`), the linear probe; top-1 / top-5 %;
- explanations.parquet: per test image and description set, the predicted class's best
  descriptors with their cosines (and the true class's, when wrong); pictures/: a few of them
  drawn beside the image;
- linear_probe.parquet: the validation accuracy of each strength tried; run.json: what was run
  (dataset, classes, model, description sources and prompts); metrics.json: the headline figures.

Features are cached in <out>/<backbone>/features (kept between runs, like `extract`'s): a new
template or description set encodes only its texts, never the images again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from pipeline.common import InputError, read_parquet_with_metadata, write_json, write_parquet
from stages.common import PARAMS_OPTION, resolve_device
from stages.layout import artifact_option, describe_stage, require
from stages.params import ParamsError, load_params

TEMPLATES = Path("prompts/templates")  # relative to the project root, like dvc.yaml's paths


def main(name: Optional[str] = typer.Argument(None, help="The backbone to score, a key of "
                                              "clip.backbones. Default: clip.backbone."),
         index: Path = artifact_option("data", "index", help="Index tables of `data`."),
         descriptions: Path = artifact_option("describe", help="Folder of the description sets."),
         clip_root: Path = artifact_option("clip", flag="--clip",
                                           help="Folder of the resolved backbones."),
         templates: Path = typer.Option(TEMPLATES, help="Folder of the template set files."),
         out: Path = artifact_option("zeroshot", help="Writes <out>/<backbone>/."),
         params: Path = PARAMS_OPTION) -> None:
    """Score zero-shot CLIP (template sets), Classification by Description (description sets)
    and CLIP's linear probe on one backbone, with per-image explanations."""
    settings = load_params(params)
    config = settings.zeroshot
    name = settings.clip.backbone if name is None else name
    if name not in settings.clip.backbones:
        raise ParamsError(f"clip.backbones has no backbone {name!r} (backbones: "
                          f"{', '.join(settings.clip.backbones)})")
    clip_dir = require(clip_root / name, made_by=f"clip@{name}")
    require(index / "cub_images.parquet", made_by="data")
    sets = {s: require(descriptions / f"{s}.parquet",
                       made_by=describe_stage(s, settings.describe))
            for s in config.descriptions}
    from pipeline.zeroshot import load_template_set

    template_sets = {}
    for template_set in config.templates:
        try:
            template_sets[template_set] = load_template_set(template_set, templates)
        except InputError as error:
            raise InputError(f"zeroshot.templates: {error}") from None

    import numpy as np
    import pandas as pd
    import torch

    from pipeline.clip import load_clip
    from pipeline.features import (ExtractOptions, extract_image_features, extract_text_features,
                                   read_feature_set)
    from pipeline.zeroshot import (accuracy, class_prompts, description_scores, explain,
                                   explanation_picture, fit_linear_probe, picture_sample,
                                   template_scores)

    out = out / name
    extract = settings.extract
    device = resolve_device(config.device, "zeroshot.device")
    clip = load_clip(clip_dir, device)
    options = ExtractOptions(
        batch_size=extract.images.batch_size, num_workers=extract.images.num_workers,
        device=device, amp=extract.amp, precision=extract.precision,
        shard_rows=extract.shard_rows, max_image_pixels=extract.images.max_image_pixels,
        max_bad_fraction=extract.images.max_bad_fraction, decode=extract.images.decode)
    text_options = ExtractOptions(batch_size=extract.texts.batch_size, device=device,
                                  amp=extract.amp, precision=extract.precision,
                                  shard_rows=extract.shard_rows)

    index_table, meta = read_parquet_with_metadata(index / "cub_images.parquet")
    root = Path(meta["fgvc.root"])
    encoded = {"cub_images": extract_image_features(
        clip, root, index_table, out / "features" / "cub_images", name="cub_images",
        id_columns=["image_id", "class_id", "split"], options=options)}
    images = read_feature_set(out / "features" / "cub_images", clip.fingerprint)
    classes = (index_table[["class_id", "class_name"]].drop_duplicates("class_id")
               .sort_values("class_id").reset_index(drop=True))
    position = {int(c): i for i, c in enumerate(classes["class_id"])}
    class_names = classes["class_name"].tolist()
    labels_all = images.ids["class_id"].map(position).to_numpy(np.int64)
    test = (images.ids["split"] == "test").to_numpy()
    test_x, test_y = images.embeddings[test], torch.as_tensor(labels_all[test])
    test_ids = images.ids.loc[test, "image_id"].to_numpy()
    paths = index_table.set_index("image_id").loc[test_ids, "path"].tolist()

    def encode(texts: pd.DataFrame, folder: str, id_columns: list[str]) -> np.ndarray:
        encoded[folder] = extract_text_features(clip, texts, out / "features" / folder,
                                                name=folder, id_columns=id_columns,
                                                options=text_options)
        return read_feature_set(out / "features" / folder, clip.fingerprint).embeddings

    rows = []
    for template_set, texts in template_sets.items():
        prompts = class_prompts(texts, class_names)
        features = encode(prompts, "templates-" + re.sub(r"[^A-Za-z0-9_-]", "-", template_set),
                          ["class_index", "template_index"])
        scores = template_scores(test_x, features, prompts["class_index"].to_numpy(),
                                 len(class_names))
        rows.append({"method": "clip", "variant": template_set, "texts": len(prompts),
                     "source": "templates", "prompt": f"{len(texts)} template(s): {texts[0]!r}"
                     + (" ..." if len(texts) > 1 else ""), **accuracy(scores, test_y)})

    explanations, pictured = [], []
    (out / "pictures").mkdir(parents=True, exist_ok=True)  # a DVC output, even when empty
    for number, (set_name, path) in enumerate(sets.items()):
        table, _ = read_parquet_with_metadata(path)
        unknown = sorted(set(table["class_id"]) - set(position))
        if unknown:
            raise InputError(f"{path}: class ids {unknown[:10]} are not in the dataset's classes")
        # CBD scores a class by its list of descriptors: one LLM answer repeating another's
        # descriptor must not count it twice
        table = (table.drop_duplicates(["class_id", "text"]).reset_index(drop=True)
                 .assign(row=lambda t: np.arange(len(t))))
        features = encode(table[["row", "text"]], f"descriptions-{set_name}", ["row"])
        descriptor_class = table["class_id"].map(position).to_numpy(np.int64)
        scores, similarities = description_scores(test_x, features, descriptor_class,
                                                  len(class_names))
        described = settings.describe.every_set[set_name]
        rows.append({"method": "cbd", "variant": set_name, "texts": len(table),
                     "source": f"backend {described.backend}",
                     "prompt": _prompt_of(described, settings.describe),
                     **accuracy(scores, test_y)})
        why = explain(similarities, descriptor_class, table["text"].tolist(), scores, test_y,
                      test_ids, class_names, config.explanations.top_descriptors)
        explanations.append(why.assign(descriptions=set_name))
        if number == 0:  # the first set's decisions are drawn
            correct = (scores.argmax(dim=1) == test_y).numpy()
            for i in picture_sample(correct, config.explanations.pictures):
                picture = out / "pictures" / f"{test_ids[i]}.png"
                explanation_picture(root / paths[i], why[why["image_id"] == test_ids[i]], picture,
                                    title=f"{name}, descriptions {set_name!r}: "
                                          f"{'right' if correct[i] else 'wrong'}")
                pictured.append({"image_id": int(test_ids[i]), "file": picture.name,
                                 "descriptions": set_name, "correct": bool(correct[i])})

    probe_config = config.linear_probe
    train = (images.ids["split"] == "train").to_numpy()
    probe = fit_linear_probe(images.embeddings[train], labels_all[train], len(class_names),
                             strengths=probe_config.strengths,
                             val_fraction=probe_config.val_fraction, seed=probe_config.seed,
                             max_iter=probe_config.max_iter, device=device)
    rows.append({"method": "linear_probe", "variant": "logistic regression",
                 "texts": 0, "source": f"{int(train.sum())} train images",
                 "prompt": f"L2 strength {probe.strength:g} (picked on held-out train)",
                 **accuracy(probe.logits(test_x).cpu(), test_y)})

    backbone = settings.clip.backbones[name]
    results = pd.DataFrame(rows).assign(backbone=name, model=backbone.model,
                                        pretrained=backbone.pretrained or "trained here",
                                        test_images=int(test.sum()), classes=len(class_names))
    write_parquet(out / "results.parquet", results)
    write_parquet(out / "linear_probe.parquet", probe.validation)
    write_parquet(out / "explanations.parquet",
                  pd.concat(explanations, ignore_index=True) if explanations
                  else pd.DataFrame(columns=["descriptions"]))
    write_json(out / "run.json", {
        "dataset": _dataset(settings.data, len(class_names)), "classes": len(class_names),
        "test_images": int(test.sum()), "train_images": int(train.sum()), "backbone": name,
        "model": backbone.model, "pretrained": backbone.pretrained,
        "templates": {s: len(t) for s, t in template_sets.items()},
        "descriptions": {s: {**settings.describe.every_set[s].model_dump(exclude_none=True)}
                         for s in sets},
        "pictures": pictured})
    write_json(out / "metrics.json", {
        f"{row['method']}/{row['variant']}": {"top1": round(row["top1"], 2),
                                              "top5": round(row["top5"], 2)} for row in rows})
    print(f"zeroshot@{name}: features (cached in {out / 'features'}): " + ", ".join(
        f"{folder} {result.computed_shards} shard(s) encoded, {result.reused_shards} reused"
        for folder, result in encoded.items()))
    for row in rows:
        print(f"zeroshot@{name}: {row['method']:>12} {row['variant']:<38} top-1 "
              f"{row['top1']:5.1f}  top-5 {row['top5']:5.1f}")
    print(f"zeroshot@{name}: {int(test.sum())} test images, {len(class_names)} classes "
          f"(chance {100 / len(class_names):.1f}%)")


def _dataset(data, classes: int) -> str:
    """What the dataset is, in a few words (run.json, every table of the report)."""
    if Path(data.root).name in data.demo:  # a world of demo@<name>
        return f"demo world ({classes} made-up bird species, drawn)"
    name = "CUB-200-2011" if data.target.format == "cub" else data.target.path
    return f"{name} ({classes} classes)"


def _prompt_of(described, describe) -> str:
    """How a description set was asked for, in a few words."""
    if described.prompt:
        return f"prompt {described.prompt}"
    if described.path:
        return f"file {Path(described.path).name}"
    traits = described.traits_per_sample or describe.attributes.traits_per_sample
    return f"{traits} attribute(s) per sentence"
