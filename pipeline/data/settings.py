"""The `data` section: where every dataset lives and how the target is read, and the demo
worlds. Each target format brings its own section (`pipeline.data.formats`)."""

from __future__ import annotations

from pathlib import Path

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SerializeAsAny, ValidationError, field_validator, model_validator

from pipeline.config import Named, NamedOrEmpty, Section, Whole
from pipeline.data.reference_names import ReferenceList


def inside(value: str | None, folder: str, key: str | None = None) -> None:
    """Refuse a path that leaves `folder` (absolute, or with `..`): the stages that read it
    depend on that folder, so a file outside would go untracked. `key`: named in the message
    (a rule across a section's keys)."""
    if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts):
        raise ValueError(f"{key + ': ' if key else ''}{value!r} must be a path inside {folder} "
                         "(the stages that read it depend on data.root)")


TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")


class DemoWorldSpec(Section):
    """One demo world, drawn from its seed: CUB-like birds, their captions, COCO-like scenes."""

    seed: int = 0
    num_classes: int = Field(20, ge=2, le=200)
    train_per_class: int = Field(30, ge=1)
    test_per_class: int = Field(30, ge=1)
    coco_images: int = Field(3000, ge=100)
    image_size: int = Field(96, ge=32, le=1024)
    coco_captions_per_image: int = Field(5, ge=1)
    captions_per_image: int = Field(10, ge=1, description="Reed-like captions of each bird")


class TargetSettings(Section):
    """What every target format reads: its folder under data.root. A format adds its own keys,
    and names the reference list of its dataset's class names, if there is one."""

    reference_names: ClassVar[ReferenceList | None] = None  # data.target.names: reference

    format: str = Field(description="the layout: a name of pipeline/data/formats "
                        "(cub, imagefolder, oxford_pets, flowers102, fgvc_aircraft, food101, "
                        "stanford_cars)")
    path: str = Field(description="its folder, under data.root")
    names: Literal["auto", "reference", "dataset"] = Field(
        "auto", description="class names for prompts and descriptions: reference (the list the "
        "published zero-shot numbers used: CBD's for cub, CLIP's for the suite's formats), "
        "dataset (the reader's, e.g. CUB's folder names), auto (reference where the target's "
        "classes are exactly the list's, else dataset)")

    @field_validator("path")
    @classmethod
    def _inside_root(cls, path: str) -> str:
        inside(path, "data.root")
        return path


class CoopSplitTarget(TargetSettings):
    """A format CoOp publishes a split file for (Oxford-IIIT Pet, Flowers-102, Food-101,
    Stanford Cars): its train/val/test may come from that file instead (`pipeline.data.
    coop_split`)."""

    coop_split: str | None = Field(None, description="CoOp's split file (split_zhou_<Name>."
                                   "json), under path: train/val/test and class names from it, "
                                   "val the held-out slice model selection uses; null: the "
                                   "format's own split")

    @field_validator("coop_split")
    @classmethod
    def _inside_target(cls, value: str | None) -> str | None:
        inside(value, "data.target.path")
        return value


def _target(raw):
    from pipeline.data.formats import TARGET_FORMATS

    return TARGET_FORMATS.validate_one(raw, "format")


def _default_target():
    return _target({"format": "cub", "path": "CUB_200_2011"})


class Data(Section):
    """Every dataset lives under data.root; the fine-grained target, its per-image captions,
    and COCO for the Q-Former."""

    demo: NamedOrEmpty[DemoWorldSpec] = Field(
        default_factory=lambda: {"world": DemoWorldSpec()},
        description="demo worlds to draw (stage demo@<name> -> artifacts/data/<name>); {}: none")
    root: str = Field("artifacts/data/world", description="every dataset below lives here: a "
                      "demo world, or your data folder (keep it the same relative path for the "
                      "whole team)")
    target: Annotated[SerializeAsAny[TargetSettings], Whole] = Field(
        default_factory=_default_target, description="the fine-grained dataset, in data.root")
    captions: str | None = Field("text_c10", description="per-image captions of the target "
                                 "(Reed et al.'s text_c10 for CUB), in data.root; null: none")
    coco: str | None = Field("coco", description="COCO 2014: train2014/, val2014/, annotations/;"
                             " null: no COCO, so no Q-Former (its columns are left out)")
    karpathy_json: str | None = Field("dataset_coco.json", description="Karpathy's split, in "
                                      "the coco folder; null: annotations/ (unread without "
                                      "COCO)")
    targets: Named[dict[str, Any]] = Field(
        default_factory=lambda: {"cub": {}}, description="the targets the pipeline runs on, "
        "<target> in every stage name and path that depends on one: {} is data.target with "
        "data.captions; an entry that names a format is a dataset of its own ({format: "
        "oxford_pets, path: oxford_pets}, with its own captions: key, default null); one "
        "without overrides data.target's keys ({path: CUB_copy})")

    def target_named(self, name: str) -> Data:
        """These settings for target `name` of data.targets: data.target and data.captions are
        that target's (what every reader and stage of one target reads)."""
        if name not in self.targets:
            raise ValueError(f"data.targets has no target {name!r} (targets: "
                             f"{', '.join(self.targets)})")
        entry = dict(self.targets[name])
        own = "format" in entry  # a dataset of its own: nothing of data.target is inherited
        captions = entry.pop("captions", None if own else self.captions)
        target = entry if own else {**self.target.model_dump(), **entry}
        return self.model_copy(update={"target": _target(target), "captions": captions,
                                       "targets": {name: {}}})

    @property
    def has_coco(self) -> bool:
        """Is there COCO to train the Q-Former on (data.coco set)?"""
        return self.coco is not None

    @property
    def is_demo(self) -> bool:
        """Is data.root a world of demo@<name> (made up, in the real datasets' layouts)?"""
        return Path(self.root).name in self.demo

    def dataset_name(self, classes: int) -> str:
        """What the target is, in a few words (run.json, every table of the report)."""
        if self.is_demo:  # a world of demo@<name>
            return f"demo world ({classes} made-up bird species, drawn)"
        name = "CUB-200-2011" if self.target.format == "cub" else self.target.path
        return f"{name} ({classes} classes)"

    @field_validator("target", mode="before")
    @classmethod
    def _format_reads_it(cls, raw):
        return _target(raw)

    @model_validator(mode="after")
    def _paths_stay_inside_root(self) -> Data:
        inside(self.captions, "data.root", "captions")
        inside(self.coco, "data.root", "coco")
        inside(self.karpathy_json, "data.coco", "karpathy_json")
        return self

    @model_validator(mode="after")
    def _captions_follow_cub(self) -> Data:
        if self.captions is not None and self.target.format != "cub":
            raise ValueError("captions: per-image captions are read in Reed et al.'s layout, "
                             "which mirrors CUB's images/ folder, and data.target is format "
                             f"{self.target.format!r}: set data.captions: null")
        return self

    @model_validator(mode="after")
    def _every_target_reads(self) -> Data:
        for name in self.targets:
            if not TARGET_NAME.fullmatch(name) or name == "coco":
                raise ValueError(f"targets: {name!r}: a target's name is a folder and part of "
                                 "stage names (zeroshot@<target>-<backbone>): letters, digits "
                                 "and '_', not 'coco' (COCO's features are extract/coco/)")
            try:
                self.target_named(name)._captions_follow_cub()
            except ValidationError as error:
                first = error.errors()[0]
                key = ".".join(map(str, first["loc"]))
                message = ("unknown key" if first["type"] == "extra_forbidden" else
                           first["msg"].removeprefix("Value error, "))
                raise ValueError(f"targets.{name}{'.' + key if key else ''}: {message}") from None
            except ValueError as error:
                raise ValueError(f"targets.{name}.{' '.join(str(error).split())}") from None
        return self

    @model_validator(mode="after")
    def _worlds_do_not_meet_the_index(self) -> Data:
        if "index" in self.demo:  # artifacts/data/index is the data stage's output
            raise ValueError("demo: 'index' is the data stage's folder: name the world otherwise")
        return self
