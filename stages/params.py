"""params.yaml, validated: the library's sections joined into one file, checked when a stage
loads it.

Each section, with its defaults, is declared once, in the package that reads it
(`pipeline/<package>/settings.py`); this module adds only the rules across sections, the keys
that were renamed, and the one-line errors. Unknown keys, wrong types and out-of-range values are
refused with one line per problem that names the key (`train_adapter.seeds: ...`).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from pipeline.adapter import NO_PRIOR, TrainAdapter
from pipeline.clip import ClipSettings
from pipeline.common import UniqueKeyLoader
from pipeline.config import Section
from pipeline.data import Data
from pipeline.describe import Describe
from pipeline.features import ExtractSettings
from pipeline.qformer import TrainQFormer
from pipeline.report import Report
from pipeline.zeroshot import Zeroshot

_LINEAR = "train_adapter.methods.linear"
_QFORMER_MODEL = ("num_queries", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                  "cross_attention_frequency", "pooling", "dropout")
# Keys an earlier params.yaml had: each is an error that names its new place.
RENAMED = {
    "clip.backbone": "clip.adapter_backbones (a list of clip.backbones keys)",
    "data.reed": "data.captions",
    "describe.set": "train_adapter.descriptions",
    "extract.class_prompts": "zeroshot.templates (a template set in prompts/templates/: "
                             "zeroshot scores the zero-shot row of every backbone)",
    "train_adapter.llm_per_image": "train_adapter.descriptions_per_image",
    "train_adapter.budgets.shot_seeds": "train_adapter.budgets.seeds (the seeds of every "
                                        "few-shot budget, ratios included)",
    **{f"train_adapter.{key}": f"{_LINEAR}.{key}" for key in (
        "text_mapping", "steps", "batch_size", "lr", "weight_decay", "normalize",
        "logit_scale", "early_stopping")},
    **{f"train_qformer.{key}": f"train_qformer.model.{key}" for key in _QFORMER_MODEL},
    "zeroshot.linear_probe": "zeroshot.baselines.linear_probe",
    "zeroshot.explanations": "zeroshot.baselines.cbd (top_descriptors, pictures)",
}


class Params(Section):
    data: Data = Field(default_factory=Data)
    clip: ClipSettings = Field(default_factory=ClipSettings)
    describe: Describe = Field(default_factory=Describe)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    train_qformer: TrainQFormer = Field(default_factory=TrainQFormer)
    train_adapter: TrainAdapter = Field(default_factory=TrainAdapter)
    zeroshot: Zeroshot = Field(default_factory=Zeroshot)
    report: Report = Field(default_factory=Report)

    @model_validator(mode="before")
    @classmethod
    def _files_name_their_target(cls, raw):
        """A description file without `target` describes the first target of data.targets
        (written out, so params.yaml and dvc.yaml's describe_file@ paths name it)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("describe"), dict):
            return raw
        files = raw["describe"].get("files")
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        targets = data.get("targets", Data.model_fields["targets"].get_default(
            call_default_factory=True))
        if not isinstance(files, dict) or not isinstance(targets, dict) or not targets:
            return raw
        first = next(iter(targets))
        named = {name: {"target": first, **entry} if isinstance(entry, dict) else entry
                 for name, entry in files.items()}
        return {**raw, "describe": {**raw["describe"], "files": named}}

    def prior_sets(self) -> list[str]:
        """The description sets the text-prior methods train with: train_adapter.priors, or
        where it is null, train_adapter.descriptions, then every weak set of describe.sets (an
        attributes set with wrong_traits), in their order."""
        if self.train_adapter.priors is not None:
            return list(self.train_adapter.priors)
        weak = [name for name, entry in self.describe.sets.items() if entry.wrong_traits]
        return list(dict.fromkeys([self.train_adapter.descriptions, *weak]))

    def for_target(self, name: str | None) -> Params:
        """These params for target `name` of data.targets (None: the only one): data.target and
        data.captions are that target's (`Data.target_named`)."""
        targets = self.data.targets
        if name is None:
            if len(targets) > 1:
                raise ParamsError(f"data.targets has {len(targets)} targets: name one "
                                  f"(--target {' | '.join(targets)})")
            name = next(iter(targets))
        if name not in targets:
            raise ParamsError(f"data.targets has no target {name!r} (targets: "
                              f"{', '.join(targets)})")
        made = self.describe.sets_for(name)  # the sets scored zero-shot: those of the target
        scored = [n for n in self.zeroshot.descriptions if n in made]
        return self.model_copy(update={
            "data": self.data.target_named(name),
            "zeroshot": self.zeroshot.model_copy(update={"descriptions": scored})})

    @property
    def target(self) -> str:
        """The target these params are for (the first of data.targets, or `for_target`'s)."""
        return next(iter(self.data.targets))

    @property
    def has_qformer(self) -> bool:
        """Is a Q-Former trained (data.coco set: COCO is what it trains on)?"""
        return self.data.has_coco

    def with_prior_sets(self) -> TrainAdapter:
        """The train_adapter section with its priors named (`prior_sets`): what the library
        receives. Without a Q-Former (data.coco: null) the linear adapter's `qformer` mapping
        is left out: it trains its raw-text columns only."""
        update: dict = {"priors": self.prior_sets()}
        linear = self.train_adapter.methods.get("linear")
        if linear is not None and not self.has_qformer:
            unmapped = [m for m in linear.text_mapping if m != "qformer"]
            update["methods"] = {**self.train_adapter.methods, "linear": linear.model_copy(
                update={"text_mapping": unmapped})}
        return self.train_adapter.model_copy(update=update)

    @model_validator(mode="after")
    def _qformer_needs_coco(self) -> Params:
        linear = self.train_adapter.methods.get("linear")
        if self.has_qformer:
            if linear is not None and "qformer" not in linear.text_mapping:
                raise ValueError(f"{_LINEAR}.text_mapping: must hold 'qformer' (the paper's "
                                 "Table 1; 'none' is its ablation)")
            return self
        trained = [name for name, b in self.clip.backbones.items() if b.pretrained is None]
        if trained:
            raise ValueError(f"clip.backbones: {', '.join(map(repr, trained))} "
                             "(pretrained: null) would be trained on COCO, and data.coco is "
                             "null: name pretrained weights (e.g. {model: ViT-B-32, "
                             "pretrained: openai}), or set data.coco")
        if linear is not None and linear.text_mapping == ["qformer"]:
            raise ValueError(f"{_LINEAR}.text_mapping: ['qformer'] needs the Q-Former, and "
                             "data.coco is null (no COCO, no Q-Former): add 'none' (its "
                             "raw-text columns), or set data.coco")
        from pipeline.adapter import ADAPTER_METHODS

        for name, settings in self.train_adapter.methods.items():
            if name != "linear" and ADAPTER_METHODS.get(name).maps_texts(settings):
                raise ValueError(f"train_adapter.methods.{name}: trains on texts mapped by the "
                                 "Q-Former, and data.coco is null (no COCO, no Q-Former): "
                                 "set its mapping: none, or set data.coco")
        return self

    @model_validator(mode="after")
    def _description_sets_exist(self) -> Params:
        known = self.describe.every_set
        unknown = [name for name in self.zeroshot.descriptions if name not in known]
        if unknown:
            raise ValueError(f"zeroshot.descriptions: {', '.join(map(repr, unknown))} not in "
                             f"describe.sets, files or controls ({', '.join(known)})")
        # the adapters train on real texts: a control's draws would pool into one prototype
        real = {**self.describe.sets, **self.describe.files}
        if self.train_adapter.descriptions not in real:
            raise ValueError(f"train_adapter.descriptions: {self.train_adapter.descriptions!r} "
                             f"is not one of describe.sets or describe.files "
                             f"({', '.join(real)}; controls are scored zero-shot only)")
        if NO_PRIOR in self.prior_sets():
            raise ValueError(f"train_adapter.priors: {NO_PRIOR!r} marks a method without a "
                             "prior: name the description set otherwise")
        unknown = [name for name in self.prior_sets() if name not in real]
        if unknown:
            raise ValueError(f"train_adapter.priors: {', '.join(map(repr, unknown))} not in "
                             f"describe.sets or describe.files ({', '.join(real)}; controls "
                             "are scored zero-shot only)")
        return self._sets_meet_their_targets()

    def _sets_meet_their_targets(self) -> Params:
        targets = self.data.targets
        for name, entry in self.describe.files.items():
            if entry.target not in targets:
                raise ValueError(f"describe.files.{name}.target: {entry.target!r} is not a key "
                                 f"of data.targets ({', '.join(targets)})")
        if len(targets) > 1:  # a control stage runs for every target
            for name, control in self.describe.controls.items():
                if control.of in self.describe.files:
                    raise ValueError(f"describe.controls.{name}.of: {control.of!r} is a file "
                                     f"of target {self.describe.files[control.of].target!r}, "
                                     "and a control runs on every target of data.targets: "
                                     "make it of a set of describe.sets")
        for key, names in (("train_adapter.descriptions", [self.train_adapter.descriptions]),
                           ("train_adapter.priors", self.prior_sets())):
            for target in targets:
                lacking = [n for n in names if n not in self.describe.sets_for(target)]
                if lacking:
                    raise ValueError(f"{key}: {', '.join(map(repr, lacking))} is made for "
                                     f"another target, not for {target!r} (the adapters of "
                                     "every target train on it): name a set of describe.sets")
        return self

    @model_validator(mode="after")
    def _token_features_are_extracted(self) -> Params:
        if self.train_qformer.text_input == "tokens" and not self.extract.texts.tokens:
            raise ValueError("train_qformer.text_input: 'tokens' needs the per-token features: "
                             "set extract.texts.tokens: true")
        return self


class ParamsError(ValueError):
    """params.yaml is invalid; the message has one line per problem, each naming its key."""


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if not key:  # a rule across sections: its message names the keys
        return error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; see params.yaml for the known keys)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message = message.replace("Input should be", "must be")
    if error["type"] == "missing":
        message = "missing (every entry needs it)"
    if isinstance(error.get("input"), dict) or error["type"] == "missing":
        return f"{key}: {message}"
    return f"{key}: {message} (got {error.get('input')!r})"


def renamed_keys(raw: dict) -> list[str]:
    """`<old key>: renamed ...` for every key of an earlier params.yaml that `raw` still has."""
    found = []
    for old, new in RENAMED.items():
        *path, key = old.split(".")
        node = raw
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:  # a null value counts: it was a setting too
            found.append(f"{old}: renamed: it is {new} now")
    return found


def read_yaml(path: Path) -> dict:
    """A params-like YAML file as a mapping; `ParamsError` naming the line if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file")
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        what = getattr(error, "problem", None) or " ".join(str(error).split())
        raise ParamsError(f"{path}: not valid YAML{where} ({what})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (data, clip, ...)")
    return raw


def validate_params(raw: dict, source: str) -> Params:
    """`raw` (read from `source`, named in every error line) as `Params`."""
    old = renamed_keys(raw)
    if old:
        raise ParamsError("\n".join(f"{source}: {line}" for line in old))
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("\n".join(f"{source}: {_describe(e)}" for e in error.errors())) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate a params file; raises `ParamsError` with one line per problem."""
    return validate_params(read_yaml(Path(path)), str(path))
