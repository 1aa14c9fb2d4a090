"""The `describe` stages' entry: one description set from its backend, as one table
(`DESCRIPTION_COLUMNS`).

The LLM backend keeps its answers in an append-only cache that is deliberately *not* a DVC
output nor inside the workspace: DVC would restore an older copy on `dvc checkout` / `dvc exp
apply` and forget answers already paid for, and `dvc exp run --temp` / `--queue` run in a fresh
copy of the repo that would start empty. Like the Hugging Face hub cache it lives in the user's
cache folder (`$FGVC_CACHE_DIR`, default `~/.cache/fgvc`), only grows, and serves every checkout
and experiment. The table is written only when every request has a usable answer: otherwise it
would depend on which requests a flaky network let through.
"""

from __future__ import annotations

import contextlib

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline.common import InputError
from pipeline.describe.settings import API_KEY_VARIABLE, Describe, DescriptionSet

LISTED_FAILURES = 50


def default_cache() -> Path:
    """$FGVC_CACHE_DIR/llm_answers.jsonl, FGVC_CACHE_DIR defaulting to ~/.cache/fgvc."""
    return Path(os.environ.get("FGVC_CACHE_DIR", Path.home() / ".cache" / "fgvc"),
                "llm_answers.jsonl")


class UnansweredRequests(InputError):
    """Some requests got no usable answer; `details` lists them (every answer received is
    cached, so a rerun asks only these)."""

    def __init__(self, failed: list[tuple[str, int, str]]):
        super().__init__(f"{len(failed)} request(s) got no usable answer: every answer received "
                         "is cached, so a rerun asks only these")
        self.details = [f"{name} (sample {sample}): {reason}"
                        for name, sample, reason in failed[:LISTED_FAILURES]]
        if len(failed) > LISTED_FAILURES:
            self.details.append(f"... and {len(failed) - LISTED_FAILURES} more (the first "
                                f"{LISTED_FAILURES} are listed)")


def describe_set(name: str, settings: Describe, classes: pd.DataFrame,
                 attributes: pd.DataFrame | None, *, prompts: Path, cache: Path | None,
                 dry_run: bool, say: Callable[[str], None],
                 real: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Description set `name` of `settings` (a key of describe.sets, files or controls) for
    `classes` (class_id, class_name); `attributes`: the class x attribute matrix (the attributes
    backend); `real`: a control's real set, its table. A dry run plans and says what it would
    ask, and returns None."""
    entry = settings.every_set[name]
    key = f"describe.{settings.section_of(name)}.{name}"
    if entry.backend == "control":
        if dry_run:
            say(f"set {name!r} (a control of {entry.of!r}) makes no requests")
            return None
        from pipeline.describe.controls import control_table

        try:
            return control_table(real, classes, entry.kind, entry.draws, entry.concept,
                                 entry.pairs, settings.seed)
        except InputError as error:
            raise InputError(f"{key}: {error}") from None
    if entry.backend == "openai":
        return _ask_llm(key, entry, settings, classes, prompts, cache or default_cache(),
                        dry_run, say)
    if dry_run:
        say(f"set {name!r} (backend {entry.backend!r}) makes no requests")
        return None
    if entry.backend in ("cbd_json", "file"):
        from pipeline.describe.imported import describe_from_cbd, describe_from_file

        read = describe_from_cbd if entry.backend == "cbd_json" else describe_from_file
        try:
            return read(Path(entry.path), classes)
        except InputError as error:
            raise InputError(f"{key}.path: {error}") from None
    if attributes is None or attributes.shape[1] == 1:  # the class_id column alone
        raise InputError(f"{key}: backend 'attributes' needs the target's attribute "
                         "annotations, and data.target has none (an imagefolder target): use "
                         "backend openai, or describe.files")
    from pipeline.describe.attributes import describe_from_attributes

    return describe_from_attributes(
        attributes, classes,
        samples_per_class=entry.samples_per_class or settings.samples_per_class,
        traits_per_sample=entry.traits_per_sample or settings.attributes.traits_per_sample,
        min_percent=settings.attributes.min_percent, seed=settings.seed,
        wrong_traits=entry.wrong_traits or 0.0)


def _ask_llm(key: str, entry: DescriptionSet, settings: Describe, classes: pd.DataFrame,
             prompts: Path, cache_path: Path, dry_run: bool, say) -> pd.DataFrame | None:
    from pipeline.describe.answer_cache import one_writer
    from pipeline.describe.prompts import load_prompt

    try:
        template = load_prompt(entry.prompt, prompts)
    except InputError as error:
        raise InputError(f"{key}.prompt: {error}") from None
    llm, samples = settings.openai, entry.samples_per_class or settings.samples_per_class
    with contextlib.nullcontext() if dry_run else one_writer(cache_path):
        return _ask_with_cache(template, llm, samples, classes, cache_path, dry_run, say)


def _ask_with_cache(template, llm, samples: int, classes: pd.DataFrame, cache_path: Path,
                    dry_run: bool, say) -> pd.DataFrame | None:
    from tqdm import tqdm

    from pipeline.describe.answer_cache import AnswerCache
    from pipeline.describe.llm import ask_all, descriptions_table, estimate, plan_requests

    cache = AnswerCache(cache_path)
    if cache.damaged_lines:
        say(f"ignored {cache.damaged_lines} damaged line(s) in {cache_path} (a run killed "
            "mid-write); those requests are asked again")
    if llm.temperature == 0 and samples > 1:
        say(f"warning: temperature 0 asks for {samples} samples a class that will mostly repeat "
            "each other")
    requests = plan_requests(classes, template, samples, llm)
    pending = [r for r in requests if r.key not in cache]
    before = estimate(pending, llm)
    say(f"{len(requests)} requests ({len(classes)} classes x {samples} samples, prompt "
        f"{template.name!r}, server {llm.host}), {len(requests) - len(pending)} answered in "
        f"{cache_path}; {before.describe(llm.model)}")
    if dry_run:
        return None
    with tqdm(total=len(pending), desc=f"ask {llm.model}", unit="req", disable=not pending) as bar:
        report = ask_all(requests, template, cache, llm, os.environ.get(API_KEY_VARIABLE),
                         progress=bar)
    if pending:
        say(f"{report.answered} answered with {report.asked} request(s): "
            f"{report.prompt_tokens:,} prompt + {report.completion_tokens:,} completion tokens "
            f"used (estimated: about {before.prompt_tokens:,} + at most "
            f"{before.completion_tokens:,})")
    if report.failures:
        raise UnansweredRequests(sorted((r.class_name, r.sample_index, report.failures[r.key])
                                        for r in requests if r.key in report.failures))
    table = descriptions_table(requests, template, cache)
    silent = sorted(set(classes["class_name"]) - set(table["class_name"]))
    if silent:  # e.g. cached answers that a changed parser no longer reads
        raise InputError(f"{len(silent)} class(es) have no description: {', '.join(silent[:20])}")
    return table
