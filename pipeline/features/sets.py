"""The `extract` stages' entry: the feature sets of one backbone, each encoded once and read by
every stage after it.

    target_images     the target's images (all backbones: zero-shot and adapters score them)
    templates         each template set of zeroshot.templates, filled with the class names
    descriptions      each description set scored or trained on (the adapters' with per-token
                      states when extract.texts.tokens asks for them)
    coco_images       COCO's images and captions: what the Q-Former trains on (adapter
    coco_captions     backbones only)
    target_captions   per-image captions of the target (the adapters' caption columns)

`templates` and `descriptions` are folders of feature sets, one per named set (`set_folder`):
a new template set encodes only its texts, the others are kept as they are (their shards
resume), and a set no longer asked for is removed.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.common import InputError, cpu_cost_warning, read_parquet_with_metadata
from pipeline.features.settings import ExtractSettings
from pipeline.features.store import MANIFEST

if TYPE_CHECKING:  # the encoders import torch: this module is read by `fgvc --help` too
    from pipeline.features.encoding import ExtractResult


@dataclasses.dataclass(frozen=True)
class SetSpec:
    kind: str  # image | text | templates | descriptions
    table: str | None  # the data stage's index table it encodes (image and text sets)
    id_columns: tuple[str, ...]
    tokens: bool = False  # may keep per-token states (extract.texts.tokens)


FEATURE_SETS = {
    "target_images": SetSpec("image", "target_images", ("image_id", "class_id", "split")),
    "coco_images": SetSpec("image", "coco_images", ("image_id", "split")),
    "coco_captions": SetSpec("text", "coco_captions", ("image_id", "caption_index"), True),
    "target_captions": SetSpec("text", "target_captions", ("image_id", "caption_index"), True),
    "templates": SetSpec("templates", "target_classes", ("class_id", "template_index", "template")),
    "descriptions": SetSpec("descriptions", None, ("class_id", "sample_index", "prompt_id"), True),
}


@dataclasses.dataclass(frozen=True)
class SetSources:
    """Where a feature set's inputs are: the data stage's index folder, and for the folders of
    named sets their names and files."""

    index: Path
    templates: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # set -> templates
    descriptions: dict[str, Path] = dataclasses.field(default_factory=dict)  # set -> its table
    token_sets: tuple[str, ...] = ()  # named sets that keep per-token states (if tokens are on)


def set_folder(name: str) -> str:
    """The folder of named set `name` inside a templates or descriptions feature folder."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def extract_feature_set(name: str, clip_dir: Path, out: Path, sources: SetSources,
                        settings: ExtractSettings, device: str,
                        say: Callable[[str], None]) -> dict[str, ExtractResult]:
    """Encode feature set `name` (a key of FEATURE_SETS) with the CLIP in `clip_dir` into `out`,
    resuming what an earlier run finished. Returns each encoded set's result, by name (one for
    an image or text set; one per named set for templates and descriptions). A job that would
    take hours on the CPU is announced first (`say`)."""
    from pipeline.clip.loading import load_clip
    from pipeline.features.images import extract_image_features, local_image_batches
    from pipeline.features.texts import extract_text_features

    spec = FEATURE_SETS[name]
    clip = load_clip(clip_dir, device)
    ids = list(spec.id_columns)
    if spec.kind == "image":
        table, meta = read_parquet_with_metadata(Path(sources.index) / f"{spec.table}.parquet")
        _announce_cost(clip, "image", len(table), device, say)
        engine = local_image_batches
        if settings.images.engine == "ray":
            from pipeline.features.ray_engine import RayImageEngine  # Ray is optional

            engine = RayImageEngine(clip_dir, settings.images.ray)
        if "fgvc.root" not in meta and len(table):
            raise InputError(f"{spec.table}.parquet names no image folder (fgvc.root): run the "
                             "`data` stage again")
        # an empty set (COCO's with data.coco: null) has no folder: nothing is read from it
        root = Path(meta.get("fgvc.root", "."))
        return {name: extract_image_features(clip, root, table, out,
                                             name=name, id_columns=ids, settings=settings,
                                             device=device, engine=engine)}
    tokens = settings.texts.tokens and spec.tokens
    if tokens and (spec.kind == "text" or sources.token_sets):
        try:
            clip.token_width  # noqa: B018  (refused here, before any encoding, if unsupported)
        except InputError as error:
            raise InputError(f"extract.texts.tokens: {error}") from None
    if spec.kind == "text":
        table = pd.read_parquet(Path(sources.index) / f"{spec.table}.parquet")
        _announce_cost(clip, "text", len(table), device, say)
        return {name: extract_text_features(clip, table, out, name=name, id_columns=ids,
                                            settings=settings, device=device, tokens=tokens)}
    texts = _named_texts(spec, sources)
    _announce_cost(clip, "text", sum(map(len, texts.values())), device, say)
    folders = {set_name: Path(out) / set_folder(set_name) for set_name in texts}
    _keep_only(Path(out), set(folders.values()))
    return {set_name: extract_text_features(
                clip, table, folders[set_name], name=set_name, id_columns=ids, settings=settings,
                device=device, tokens=tokens and set_name in sources.token_sets)
            for set_name, table in texts.items()}


def _announce_cost(clip, kind: str, count: int, device: str, say) -> None:
    from pipeline.clip.speed import seconds_per_input

    warning = cpu_cost_warning(device, count,
                               lambda: seconds_per_input(clip, kind, device), f"{kind}s",
                               "Run it on a GPU machine (extract.device: cuda; docs/costs.md), "
                               "or stop here: finished shards are kept, so a later run resumes.")
    if warning:
        say(warning)


def _named_texts(spec: SetSpec, sources: SetSources) -> dict[str, pd.DataFrame]:
    """{set name: its text table} for a folder of named sets."""
    if spec.kind == "descriptions":
        return {set_name: pd.read_parquet(path) for set_name, path in sources.descriptions.items()}
    from pipeline.features.templates import class_prompts

    classes = pd.read_parquet(Path(sources.index) / f"{spec.table}.parquet")
    texts = {}
    for set_name, templates in sources.templates.items():
        prompts = class_prompts(templates, classes["class_name"].tolist())
        texts[set_name] = prompts.assign(
            class_id=classes["class_id"].to_numpy()[prompts["class_index"].to_numpy()],
            template=[templates[t] for t in prompts["template_index"]])
    return texts


def _keep_only(folder: Path, wanted: set[Path]) -> None:
    """Remove the named sets in `folder` that are no longer asked for (so the DVC output holds
    exactly the sets the params name); anything that is not a feature set is refused."""
    names = [path.name for path in wanted]
    if len(set(names)) != len(names):
        raise InputError(f"two set names map to the same folder in {folder}: "
                         f"{', '.join(sorted(names))} (rename one)")
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path in wanted or path.name.startswith("."):  # resume logs live beside the sets
            continue
        if not (path.is_dir() and ((path / MANIFEST).is_file() or not any(path.iterdir())
                                   or all(p.name.startswith("shard-") for p in path.iterdir()))):
            raise InputError(f"{folder} holds {path.name}, which is not a feature set: refusing "
                             "to write feature sets there (pick an empty folder or this one's own)")
        shutil.rmtree(path)
