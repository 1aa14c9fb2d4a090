"""params.yaml's sections for what the pipeline reads in: the datasets (`data`) and the class
descriptions (`describe`). Validated as part of `stages.params.Params`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from stages.param_sections import NamedOrEmpty, Section, one_of


class DemoWorld(Section):
    seed: int = 0
    num_classes: int = Field(20, ge=2, le=200)
    train_per_class: int = Field(30, ge=1)
    test_per_class: int = Field(30, ge=1)
    coco_images: int = Field(3000, ge=100)
    image_size: int = Field(96, ge=32, le=1024)


class Target(Section):
    """The fine-grained dataset the classifier learns: CUB's layout, or `<class>/<image>` folders."""
    format: Literal["cub", "imagefolder"] = "cub"
    path: str = "CUB_200_2011"  # under data.root
    # imagefolder, files under data.root: lines `<image path under path> <train|test>` (None:
    # path/train/ and path/test/), and lines `<folder> <name>` (None: the folder names)
    split_file: str | None = None
    class_names: str | None = None

    @model_validator(mode="after")
    def _options_fit_the_format(self) -> Target:
        if self.format == "cub":
            for key in ("split_file", "class_names"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} is read only by format 'imagefolder'")
        return self


def _inside(value: str | None, key: str, folder: str) -> None:
    if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts):
        raise ValueError(f"{key}: {value!r} must be a path inside {folder} (the stages that "
                         "read it depend on data.root)")


class Data(Section):
    # Demo worlds to draw, one demo@<name> stage each, into artifacts/data/<name>; {} with real data.
    demo: NamedOrEmpty[DemoWorld] = {"world": DemoWorld()}
    # The folder holding every dataset below (a DVC dependency: every file in it is tracked).
    # Keep it the same relative path on every machine (e.g. `data`, a symlink to where the data
    # is): dvc.lock and the index tables record it, so teammates share outputs only then.
    root: str = "artifacts/data/world"
    target: Target = Target()
    reed: str | None = "text_c10"  # Reed et al.'s captions of the target's images; None: none
    coco: str = "coco"  # COCO 2014: train2014/, val2014/, annotations/
    karpathy_json: str | None = "dataset_coco.json"  # in the coco folder; None: annotations/

    @model_validator(mode="after")
    def _paths_stay_inside_root(self) -> Data:
        for key in ("path", "split_file", "class_names"):
            _inside(getattr(self.target, key), f"target.{key}", "data.root")
        _inside(self.reed, "reed", "data.root")
        _inside(self.coco, "coco", "data.root")
        _inside(self.karpathy_json, "karpathy_json", "data.coco")
        return self

    @model_validator(mode="after")
    def _reed_captions_are_cub_s(self) -> Data:
        if self.reed is not None and self.target.format != "cub":
            raise ValueError("reed: Reed et al.'s captions describe CUB's images, and "
                             f"data.target is format {self.target.format!r}: set data.reed: null")
        return self

    @model_validator(mode="after")
    def _worlds_do_not_meet_the_index(self) -> Data:
        if "index" in self.demo:  # artifacts/data/index is the data stage's output
            raise ValueError("demo: 'index' is the data stage's folder: name the world otherwise")
        return self


class AttributeDescriptions(Section):
    traits_per_sample: int = Field(4, ge=1)
    min_percent: float = Field(50.0, ge=0, le=100)


class OpenAIDescriptions(Section):
    model: str = "gpt-3.5-turbo"
    base_url: str | None = None  # None: the OpenAI API; else any OpenAI-compatible server
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(256, ge=1)
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(60.0, gt=0)  # seconds per request
    max_retries: int = Field(5, ge=0)  # the client's retries on 408/409/429/5xx/connection errors
    parse_retries: int = Field(2, ge=0)  # asks again after an empty or unparseable answer


FILE_BACKENDS = ("cbd_json", "file")  # read a file: describe.files, whose stage depends on it


class DescriptionSet(Section):
    """One set of class descriptions (one `describe@<name>` stage, or `describe_file@<name>` for
    the file backends): where its texts come from."""
    backend: Literal["attributes", "openai", "cbd_json", "file"]
    prompt: str | None = None  # openai: a prompt file, prompts/describe/<prompt>.yaml
    path: str | None = None  # cbd_json: a CBD descriptor file; file: your {class: [texts]} file
    traits_per_sample: int | None = Field(None, ge=1)  # attributes; None: attributes.<same key>
    samples_per_class: int | None = Field(None, ge=1)  # attributes/openai; None: describe.<same>

    @model_validator(mode="after")
    def _backend_is_configured(self) -> DescriptionSet:
        needs = {"openai": "prompt", "cbd_json": "path", "file": "path"}.get(self.backend)
        if needs and getattr(self, needs) is None:
            raise ValueError(f"backend {self.backend!r} needs {needs}")
        for key in {"prompt", "path", "traits_per_sample", "samples_per_class"} - {needs, None}:
            if key == "traits_per_sample" and self.backend == "attributes":
                continue
            if key == "samples_per_class" and self.backend in ("attributes", "openai"):
                continue
            if getattr(self, key) is not None:
                raise ValueError(f"{key} is not read by backend {self.backend!r}")
        if self.prompt is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", self.prompt):
            raise ValueError(f"prompt {self.prompt!r}: the name of a file in prompts/describe/")
        return self


class Describe(Section):
    set: str = "attributes"  # the set the adapter trains on (extract@descriptions): a set or file
    sets: NamedOrEmpty[DescriptionSet] = {"attributes": DescriptionSet(backend="attributes")}
    # Imported description files, one describe_file@<name> stage each, which depends on the file.
    files: NamedOrEmpty[DescriptionSet] = {}
    samples_per_class: int = Field(10, ge=1)  # attributes: sentences; openai: completions
    seed: int = 0
    attributes: AttributeDescriptions = AttributeDescriptions()
    openai: OpenAIDescriptions = OpenAIDescriptions()

    @property
    def every_set(self) -> dict[str, DescriptionSet]:
        """sets and files: every description set by name."""
        return {**self.sets, **self.files}

    @model_validator(mode="before")
    @classmethod
    def _backends_sit_in_their_section(cls, raw):
        """Checked before each entry, so a misplaced set gets this one message, not first the
        other section's rules."""
        for section, backends in (("sets", ("attributes", "openai")), ("files", FILE_BACKENDS)):
            entries = raw.get(section) if isinstance(raw, dict) else None
            for name, entry in (entries.items() if isinstance(entries, dict) else ()):
                backend = entry.get("backend") if isinstance(entry, dict) else None
                if backend in ("attributes", "openai", *FILE_BACKENDS) and backend not in backends:
                    other = "files" if section == "sets" else "sets"
                    raise ValueError(f"{section}.{name}: backend {backend!r} belongs in "
                                     f"describe.{other} (describe.{section} takes "
                                     f"{' or '.join(backends)})")
        return raw

    @model_validator(mode="after")
    def _sets_and_files_differ(self) -> Describe:
        both = sorted(set(self.sets) & set(self.files))
        if both:
            raise ValueError(f"{', '.join(map(repr, both))} named in both sets and files")
        one_of(self.set, self.every_set, "describe.sets or describe.files")
        return self
