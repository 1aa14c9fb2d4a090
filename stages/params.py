"""params.yaml, validated: one typed section per stage, checked when a stage loads it.

Unknown keys, wrong types and out-of-range values are refused with one line per problem that
names the key (`train_adapter.lr: ...`) and says what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from stages.input_params import Data, Describe
from stages.param_sections import Device, Distinct, Named, Section, one_of

class DemoClipTraining(Section):
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    seed: int = 0


class Backbone(Section):
    model: str  # an open_clip model name
    pretrained: str | None = None  # an open_clip tag (e.g. openai); None: train it here (demo)


class Clip(Section):
    backbone: str = "demo-tiny"  # the backbone the adapter pipeline runs on: a key of backbones
    # Every CLIP the project resolves (one `clip@<name>` stage each); all are scored zero-shot.
    backbones: Named[Backbone] = {"demo-tiny": Backbone(model="fgvc-demo-tiny")}
    demo_train: DemoClipTraining = DemoClipTraining()  # for backbones with pretrained: null

    @model_validator(mode="after")
    def _backbone_is_listed(self) -> Clip:
        one_of(self.backbone, self.backbones, "clip.backbones")
        return self


class RayEngine(Section):
    address: str | None = None  # None: a local Ray instance; "auto" or "ray://head:10001": a cluster
    encoders: int = Field(1, ge=1)  # CLIP encoder actors (one per GPU on a cluster)
    gpus_per_encoder: float = Field(0.0, ge=0)  # 1 on a GPU cluster; 0 encodes on CPU
    cpus_per_encoder: float = Field(1.0, gt=0)
    decode_cpus: float = Field(1.0, gt=0)  # CPUs per decode task


class ExtractImages(Section):
    batch_size: int = Field(256, ge=1)
    num_workers: int = Field(1, ge=0)  # decode processes beside the encoder (0: decode inline)
    max_image_pixels: int = Field(100_000_000, ge=1)  # larger: JPEG draft decode, else skipped
    max_bad_fraction: float = Field(0.01, ge=0, le=1)  # more undecodable images fail the stage
    decode: Literal["pil", "torchvision", "nvimgcodec"] = "pil"  # else: JPEGs decoded on the device
    engine: Literal["local", "ray"] = "local"
    ray: RayEngine = RayEngine()

    @model_validator(mode="after")
    def _ray_decodes_with_pil(self) -> ExtractImages:
        if self.engine == "ray" and self.decode != "pil":
            raise ValueError("engine 'ray' decodes in CPU tasks: set decode to 'pil'")
        return self


class ExtractTexts(Section):
    batch_size: int = Field(1024, ge=1)
    tokens: bool = False  # also keep per-token states (train_qformer.text_input: tokens needs them)


class Extract(Section):
    precision: Literal["float16", "float32"] = "float16"  # stored embeddings
    shard_rows: int = Field(65536, ge=1)
    device: Device = "auto"
    amp: Literal["float16", "bfloat16", "none"] = "float16"  # autocast on CUDA; CPU: float32
    images: ExtractImages = ExtractImages()
    texts: ExtractTexts = ExtractTexts()
    class_prompts: Distinct[str] = ["a photo of a {}, a type of bird."]

    @field_validator("class_prompts")
    @classmethod
    def _one_slot(cls, prompts: list[str]) -> list[str]:
        if not prompts or any(p.count("{}") != 1 for p in prompts):
            raise ValueError("needs at least one template, each with exactly one '{}' for the class")
        return prompts


class TrainQFormer(Section):
    text_input: Literal["pooled", "tokens"] = "pooled"  # tokens: needs extract.texts.tokens
    num_queries: int = Field(8, ge=1)
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=8)
    cross_attention_frequency: int = Field(1, ge=1)
    pooling: Literal["mean", "first"] = "mean"
    dropout: float = Field(0.1, ge=0, lt=1)
    loss: Literal["pairwise_cosine", "info_nce", "info_nce_dot"] = "pairwise_cosine"
    margin: float = Field(0.0, ge=-1, le=1)
    weighting: Literal["all_pairs", "balanced"] = "all_pairs"
    temperature: float = Field(0.07, gt=0)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    device: Device = "auto"
    compile: Literal["auto", True, False] = "auto"  # torch.compile the forward; auto: on CUDA

    def compiles_on(self, device_type: str) -> bool:
        """`compile` resolved for a device: auto compiles on CUDA only (on the CPU compiling
        costs more than it saves at the demo's size, and the demo keeps the eager loop's bytes)."""
        return device_type == "cuda" if self.compile == "auto" else self.compile


class AdapterEarlyStopping(Section):
    val_fraction: float = Field(0.0, ge=0, le=0.5)  # of each class's train images; 0: off
    eval_every: int = Field(50, ge=1)  # steps between validations
    patience: int = Field(5, ge=1)  # validations without a better top-1 before a head freezes


class TrainAdapter(Section):
    selection: Distinct[Literal["class_balanced", "global"]] = Field(["class_balanced"],
                                                                      min_length=1)
    # qformer: texts through the Q-Former (the paper); none: the same texts' raw CLIP text
    # features (the ablation: does the bridge earn its place?), extra Table-1 columns
    text_mapping: Distinct[Literal["qformer", "none"]] = Field(["qformer"], min_length=1)

    @field_validator("text_mapping")
    @classmethod
    def _the_paper_is_trained(cls, mappings: list[str]) -> list[str]:
        if "qformer" not in mappings:
            raise ValueError("must hold 'qformer' (the paper's Table 1; 'none' is its ablation)")
        return mappings
    seeds: Distinct[int] = Field([0], min_length=1)
    llm_per_image: int = Field(10, ge=1)
    steps: int = Field(500, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    normalize: bool = True
    logit_scale: float = Field(10.0, gt=0)
    early_stopping: AdapterEarlyStopping = AdapterEarlyStopping()
    device: Device = "auto"

    @model_validator(mode="after")
    def _validates_before_the_end(self) -> TrainAdapter:
        every = self.early_stopping.eval_every
        if self.early_stopping.val_fraction > 0 and every >= self.steps:
            raise ValueError(f"early_stopping.eval_every ({every}) must be less than steps "
                             f"({self.steps}), or early stopping never acts")
        return self


class LinearProbe(Section):
    # CLIP's protocol: L2-regularised logistic regression on the train images' features, the
    # strength (lambda of lambda * ||W||^2) picked on a held-out slice of train, then refit on all.
    strengths: Distinct[float] = Field([1e-6, 1e-5, 1e-4, 1e-3, 1e-2], min_length=1)
    val_fraction: float = Field(0.2, gt=0, lt=1)  # of each class's train images
    max_iter: int = Field(100, ge=1)  # L-BFGS iterations per strength
    seed: int = 0

    @field_validator("strengths")
    @classmethod
    def _positive(cls, strengths: list[float]) -> list[float]:
        if any(s < 0 for s in strengths):
            raise ValueError("strengths must be >= 0")
        return strengths


class Explanations(Section):
    top_descriptors: int = Field(5, ge=1)  # per class in the explanations table and pictures
    pictures: int = Field(6, ge=0)  # test images drawn beside their descriptor scores


class Zeroshot(Section):
    # Template sets, each a row: a file prompts/templates/<name>.yaml, or an ensemble open_clip
    # ships (open_clip:OPENAI_IMAGENET_TEMPLATES, open_clip:SIMPLE_IMAGENET_TEMPLATES).
    templates: Distinct[str] = Field(["paper", "classname"], min_length=1)
    descriptions: Distinct[str] = Field(["attributes"])  # describe sets/files scored CBD's way
    explanations: Explanations = Explanations()
    linear_probe: LinearProbe = LinearProbe()
    device: Device = "auto"  # encoding reads extract's batch sizes, precision and amp


class Report(Section):
    plot_selection: Literal["class_balanced", "global"] = "class_balanced"


class Params(Section):
    data: Data = Data()
    clip: Clip = Clip()
    describe: Describe = Describe()
    extract: Extract = Extract()
    train_qformer: TrainQFormer = TrainQFormer()
    train_adapter: TrainAdapter = TrainAdapter()
    zeroshot: Zeroshot = Zeroshot()
    report: Report = Report()

    @model_validator(mode="after")
    def _scored_sets_are_described(self) -> Params:
        known = self.describe.every_set
        unknown = [name for name in self.zeroshot.descriptions if name not in known]
        if unknown:
            raise ValueError(f"zeroshot.descriptions: {', '.join(map(repr, unknown))} not in "
                             f"describe.sets or describe.files ({', '.join(known)})")
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
    if isinstance(error.get("input"), dict):  # a rule across a section's keys: it names them
        return f"{key}: {message}"
    return f"{key}: {message} (got {error.get('input')!r})"


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate a params file; raises `ParamsError` with one line per problem."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        what = getattr(error, "problem", None) or " ".join(str(error).split())
        raise ParamsError(f"{path}: not valid YAML{where} ({what})") from None
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("\n".join(f"{path}: {_describe(e)}" for e in error.errors())) from None
