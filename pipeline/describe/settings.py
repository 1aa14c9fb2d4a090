"""The `describe` section: the description sets (one `describe@<name>`, `describe_file@<name>` or
`describe_control@<name>` stage each) and the settings each backend shares."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, model_validator

from pipeline.config import NamedOrEmpty, Section

API_KEY_VARIABLE = "OPENAI_API_KEY"
BASE_URL_VARIABLE = "OPENAI_BASE_URL"
OPENAI_URL = "https://api.openai.com/v1"
OPENAI_HOST = "api.openai.com"


class AttributeDescriptions(Section):
    """Offline sentences from the class x attribute matrix (the demo's stand-in for an LLM)."""

    traits_per_sample: int = Field(4, ge=1)
    min_percent: float = Field(50.0, ge=0, le=100)


class LLMSettings(Section):
    """The OpenAI API or any OpenAI-compatible server; the key comes from $OPENAI_API_KEY."""

    model: str = "gpt-3.5-turbo"
    base_url: str | None = Field(None, description="null: api.openai.com | e.g. "
                                 "http://localhost:8000/v1 (vLLM, Ollama)")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(256, ge=1)
    concurrency: int = Field(8, ge=1, description="requests in flight")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(5, ge=0, description="the client's retries (408/409/429/5xx, "
                             "timeouts), honouring Retry-After")
    parse_retries: int = Field(2, ge=0, description="asks again after an empty or unparseable "
                               "answer")

    @property
    def url(self) -> str:
        """The server actually asked: base_url, else $OPENAI_BASE_URL, else the OpenAI API."""
        return self.base_url or os.environ.get(BASE_URL_VARIABLE) or OPENAI_URL

    @property
    def host(self) -> str:
        """host:port of the server, never its `user:password@` (the host is written into the
        answer cache, the descriptions tables' metadata and the report)."""
        return server_address(self.url)

    @property
    def is_openai(self) -> bool:
        return urlparse(self.url).hostname == OPENAI_HOST


def server_address(url: str) -> str:
    """'host:port' of a URL (or of a netloc already shortened to one), without the credentials
    a base URL may carry: 'http://me:secret@llm.lan:8000/v1' -> 'llm.lan:8000'."""
    netloc = urlparse(url if "//" in url else f"//{url}").netloc
    return netloc.rpartition("@")[2]


FILE_BACKENDS = ("cbd_json", "file")  # read a file: describe.files, whose stage depends on it
SET_BACKENDS = ("attributes", "openai")


class DescriptionSet(Section):
    """One set of class descriptions (one `describe@<name>` stage, or `describe_file@<name>` for
    the file backends): where its texts come from."""

    backend: Literal["attributes", "openai", "cbd_json", "file"]
    prompt: str | None = None  # openai: a prompt file, prompts/describe/<prompt>.yaml
    path: str | None = None  # cbd_json: a CBD descriptor file; file: your {class: [texts]} file
    traits_per_sample: int | None = Field(None, ge=1)  # attributes; None: attributes.<same key>
    samples_per_class: int | None = Field(None, ge=1)  # attributes/openai; None: describe.<same>
    # attributes: the share of stated traits swapped for a wrong value of their kind (a weak
    # set, erring as an LLM does); None: none
    wrong_traits: float | None = Field(None, ge=0, le=1)
    # cbd_json/file: the target (a key of data.targets) whose classes the file describes
    # (params.yaml names it: it is in the stage's paths); a set of describe.sets is made for
    # every target. None: the first target (filled in when params.yaml is read).
    target: str | None = None

    @model_validator(mode="after")
    def _backend_is_configured(self) -> DescriptionSet:
        needs = {"openai": "prompt", "cbd_json": "path", "file": "path"}.get(self.backend)
        if needs and getattr(self, needs) is None:
            raise ValueError(f"backend {self.backend!r} needs {needs}")
        for key in {"prompt", "path", "traits_per_sample", "samples_per_class",
                    "wrong_traits", "target"} - {needs, None}:
            if key == "target" and self.backend in FILE_BACKENDS:
                continue
            if key in ("traits_per_sample", "wrong_traits") and self.backend == "attributes":
                continue
            if key == "samples_per_class" and self.backend in SET_BACKENDS:
                continue
            if getattr(self, key) is not None:
                raise ValueError(f"{key} is not read by backend {self.backend!r}")
        if self.prompt is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", self.prompt):
            raise ValueError(f"prompt {self.prompt!r}: the name of a file in prompts/describe/")
        return self


class ControlSet(Section):
    """A control description set, made from a real one (one `describe_control@<name>` stage):
    WaffleCLIP's random descriptors, or the real texts shuffled across classes."""

    kind: Literal["words", "characters", "waffle", "shuffled"]
    of: str  # the real set: a key of describe.sets or describe.files
    draws: int = Field(7, ge=1, le=100)  # independent draws, scored apart: mean ± std
    concept: str | None = Field(None, min_length=1)  # "bird": "A photo of a bird: a <class>, ..."
    pairs: int | None = Field(None, ge=1)  # waffle: (word, character) pairs; None: the real count

    @property
    def backend(self) -> str:
        return "control"

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> ControlSet:
        if self.pairs is not None and self.kind != "waffle":
            raise ValueError(f"pairs is read by kind 'waffle' only, not {self.kind!r}")
        if self.concept is not None and self.kind == "shuffled":
            raise ValueError("concept is not read by kind 'shuffled' (it keeps the real texts)")
        return self


def _demo_controls() -> dict[str, ControlSet]:
    # WaffleCLIP's controls of the demo's one-trait descriptors (CBD-like lists)
    return {"random_words": ControlSet(kind="words", of="descriptors"),
            "random_characters": ControlSet(kind="characters", of="descriptors"),
            "waffle_bird": ControlSet(kind="waffle", of="descriptors", concept="bird"),
            "shuffled": ControlSet(kind="shuffled", of="descriptors")}


def _demo_sets() -> dict[str, DescriptionSet]:
    return {"attributes": DescriptionSet(backend="attributes"),
            "descriptors": DescriptionSet(backend="attributes", traits_per_sample=1),
            # the weak prior: a third of the stated traits wrong, as an LLM errs
            "attributes_weak": DescriptionSet(backend="attributes", wrong_traits=0.33)}


class Describe(Section):
    """Class descriptions: the text that stands in for images of a class."""

    sets: NamedOrEmpty[DescriptionSet] = Field(
        default_factory=_demo_sets, description="one describe@<target>-<name> stage per target "
        "-> artifacts/describe/<target>/sets/<name>.parquet; backend attributes (offline sentences of "
        "traits_per_sample traits) or openai ({backend: openai, prompt: cbd}: a file in "
        "prompts/describe/)")
    files: NamedOrEmpty[DescriptionSet] = Field(
        default_factory=dict, description="imported files, one describe_file@<name> stage each "
        "(the file a dependency), for the target it names: {backend: cbd_json, path: "
        "data/cbd/descriptors_cub.json, target: cub} or {backend: file, path: "
        "my_descriptions.yaml, target: cub} ({class name: [texts]})")
    controls: NamedOrEmpty[ControlSet] = Field(
        default_factory=_demo_controls, description="control sets made from a real set of "
        "sets or files, one describe_control@<target>-<name> stage per target of its set "
        "(pipeline/describe/controls.py): "
        "{kind: words | characters | waffle | shuffled, of: <set>, draws: 7, concept: bird}; "
        "WaffleCLIP's random descriptors (waffle: word and character pairs shared by every "
        "class), or the real texts of another class")
    samples_per_class: int = Field(10, ge=1, description="attributes: sentences per class; "
                                   "openai: completions per class")
    seed: int = 0
    attributes: AttributeDescriptions = Field(default_factory=AttributeDescriptions)
    openai: LLMSettings = Field(default_factory=LLMSettings)

    @property
    def every_set(self) -> dict[str, DescriptionSet | ControlSet]:
        """sets, files and controls: every description set by name."""
        return {**self.sets, **self.files, **self.controls}

    def sets_for(self, target: str) -> dict[str, DescriptionSet | ControlSet]:
        """The sets made for `target`: every set of describe.sets, the files that name it, and
        the controls of those."""
        real = {**self.sets, **{n: f for n, f in self.files.items() if f.target == target}}
        return {**real, **{n: c for n, c in self.controls.items() if c.of in real}}

    def section_of(self, name: str) -> str:
        """'sets', 'files' or 'controls': where set `name` is declared."""
        return next(key for key in ("files", "controls", "sets") if name in getattr(self, key))

    def provenance(self, name: str) -> dict:
        """How set `name` was made: its entry (set keys only) with `source` and `prompt`, a few
        words each ("backend openai", "prompt cbd"; "file descriptors_cub.json"; "4 attribute(s)
        per sentence")."""
        entry = self.every_set[name]
        if isinstance(entry, ControlSet):
            made = {"words": "random words", "characters": "random characters",
                    "waffle": f"{entry.pairs or 'as many'} random word / character pairs shared "
                    "by every class", "shuffled": "another class's texts"}[entry.kind]
            concept = f", concept {entry.concept!r}" if entry.concept else ""
            return {**entry.model_dump(exclude_none=True), "backend": "control",
                    "source": f"control of {entry.of}",
                    "prompt": f"{made}{concept}, {entry.draws} draw(s)"}
        if entry.prompt:
            prompt = f"prompt {entry.prompt}"
        elif entry.path:
            prompt = f"file {Path(entry.path).name}"
        else:
            prompt = (f"{entry.traits_per_sample or self.attributes.traits_per_sample} "
                      "attribute(s) per sentence")
            if entry.wrong_traits:
                prompt += f", {entry.wrong_traits:.0%} of them wrong"
        return {**entry.model_dump(exclude_none=True), "source": f"backend {entry.backend}",
                "prompt": prompt}

    def made_by(self, name: str) -> dict:
        """What wrote set `name`, for its table's metadata: its provenance and, for an LLM set,
        the model, the server actually asked, the temperature, the token limit and the samples
        per class (the answer cache keys answers by them)."""
        made = self.provenance(name)
        entry = self.every_set[name]
        if entry.backend == "openai":
            made.update(model=self.openai.model, server=self.openai.host,
                        temperature=self.openai.temperature, max_tokens=self.openai.max_tokens,
                        samples_per_class=entry.samples_per_class or self.samples_per_class)
        return made

    @model_validator(mode="before")
    @classmethod
    def _backends_sit_in_their_section(cls, raw):
        """Checked before each entry, so a misplaced set gets this one message, not first the
        other section's rules."""
        for section, backends in (("sets", SET_BACKENDS), ("files", FILE_BACKENDS)):
            entries = raw.get(section) if isinstance(raw, dict) else None
            for name, entry in (entries.items() if isinstance(entries, dict) else ()):
                backend = entry.get("backend") if isinstance(entry, dict) else None
                if backend in (*SET_BACKENDS, *FILE_BACKENDS) and backend not in backends:
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
        twice = sorted(set(self.controls) & (set(self.sets) | set(self.files)))
        if twice:
            raise ValueError(f"controls: {', '.join(map(repr, twice))} also named in sets or "
                             "files")
        for name, control in self.controls.items():
            if control.of not in {**self.sets, **self.files}:
                raise ValueError(f"controls.{name}.of: {control.of!r} is not a set of "
                                 f"describe.sets or describe.files "
                                 f"({', '.join({**self.sets, **self.files}) or 'none'})")
        return self
