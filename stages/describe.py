"""Stages `describe@<set>` and `describe_file@<set>`: one set of class descriptions into
<out>/<set>.parquet (class_id, class_name, text, source, prompt_id, sample_index), from the
backend `describe.sets.<set>` (an LLM, class attributes) or `describe.files.<set>` (an imported
file, the stage's dependency) names. One stage per set, so a new prompt asks the LLM only for
that set; `describe.set` names the set the adapter trains on, `zeroshot.descriptions` the sets
scored the CBD way. Both stages run this one command, `fgvc describe <set>`.

The LLM backend keeps its answers in an append-only cache, deliberately *not* a DVC output nor
inside the workspace: DVC would restore an older copy on `dvc checkout` / `dvc exp apply` and
forget answers already paid for, and `dvc exp run --temp` / `--queue` run in a fresh copy of the
repo that would start empty. Like the Hugging Face hub cache it lives in the user's cache folder
(`$FGVC_CACHE_DIR`, default `~/.cache/fgvc`), only grows, and serves every checkout and
experiment. The descriptions table itself is the DVC output and goes through `dvc push`/`pull`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from pipeline.common import InputError, read_parquet_with_metadata, write_parquet
from stages.common import PARAMS_OPTION
from stages.layout import artifact_option, require
from stages.params import ParamsError, load_params


PROMPTS = Path("prompts/describe")  # relative to the project root, like dvc.yaml's paths


def main(name: Optional[str] = typer.Argument(None, help="The set to write, a key of "
                                              "describe.sets or describe.files. Default: "
                                              "describe.set."),
         index: Path = artifact_option("data", "index", help="Index tables of `data`."),
         out: Path = artifact_option("describe", help="Folder of the description sets: writes "
                                     "<out>/<set>.parquet."),
         prompts: Path = typer.Option(PROMPTS, help="Folder of the prompt files (openai)."),
         cache: Path = typer.Option(None, help="The LLM answer cache (append-only JSONL). "
                                    "Default: $FGVC_CACHE_DIR/llm_answers.jsonl, "
                                    "FGVC_CACHE_DIR defaulting to ~/.cache/fgvc."),
         dry_run: bool = typer.Option(False, "--dry-run",
                                      help="Print the requests still to make, their estimated "
                                      "tokens and cost, and stop before spending anything."),
         params: Path = PARAMS_OPTION) -> None:
    """Write one set of class descriptions: an LLM (OpenAI or any OpenAI-compatible server,
    cached), an imported CBD file, your own file, or offline sentences from class attributes."""
    config = load_params(params).describe
    name = config.set if name is None else name
    if name not in config.every_set:
        raise ParamsError(f"describe.sets and describe.files have no set {name!r} "
                          f"(sets: {', '.join(config.every_set)})")
    chosen = config.every_set[name]
    require(index / "cub_classes.parquet", made_by="data")

    from pipeline.describe import describe_from_attributes, describe_from_cbd, describe_from_file

    classes, _ = read_parquet_with_metadata(index / "cub_classes.parquet")
    key = f"describe.{'files' if name in config.files else 'sets'}.{name}"
    if chosen.backend == "openai":
        from pipeline.describe import load_prompt

        try:
            template = load_prompt(chosen.prompt, prompts)
        except InputError as error:
            raise InputError(f"{key}.prompt: {error}") from None
        cache = cache or Path(os.environ.get("FGVC_CACHE_DIR", Path.home() / ".cache" / "fgvc"),
                              "llm_answers.jsonl")
        table = _describe_with_llm(config, template, classes, cache, dry_run,
                                   chosen.samples_per_class or config.samples_per_class)
        if table is None:
            return
    elif dry_run:
        print(f"describe: set {name!r} (backend {chosen.backend!r}) makes no requests")
        return
    elif chosen.backend in ("cbd_json", "file"):
        read = describe_from_cbd if chosen.backend == "cbd_json" else describe_from_file
        try:
            table = read(Path(chosen.path), classes)
        except InputError as error:
            raise InputError(f"{key}.path: {error}") from None
    else:
        attributes, _ = read_parquet_with_metadata(
            require(index / "cub_attributes.parquet", made_by="data"))
        if attributes.shape[1] == 1:  # the class_id column alone
            raise InputError(f"{key}: backend 'attributes' needs the target's attribute "
                             "annotations, and data.target has none (an imagefolder target): "
                             "use backend openai, or describe.files")
        table = describe_from_attributes(
            attributes, classes,
            samples_per_class=chosen.samples_per_class or config.samples_per_class,
            traits_per_sample=chosen.traits_per_sample or config.attributes.traits_per_sample,
            min_percent=config.attributes.min_percent, seed=config.seed)
    write_parquet(out / f"{name}.parquet", table)
    print(f"describe: set {name!r}: {len(table)} descriptions for {table['class_id'].nunique()} "
          f"classes (backend {chosen.backend}); e.g. {table['text'].iloc[0]!r}")


def _describe_with_llm(config, template, classes, cache_path: Path, dry_run: bool,
                       samples_per_class: int):
    from tqdm import tqdm

    from pipeline.describe import (API_KEY_VARIABLE, AnswerCache, LLMSettings, ask_all,
                                   descriptions_table, estimate, plan_requests)

    settings = LLMSettings(**config.openai.model_dump())
    cache = AnswerCache(cache_path)
    if cache.damaged_lines:
        print(f"describe: ignored {cache.damaged_lines} damaged line(s) in {cache_path} "
              "(a run killed mid-write); those requests are asked again")
    if settings.temperature == 0 and samples_per_class > 1:
        print(f"describe: warning: temperature 0 asks for {samples_per_class} samples a "
              "class that will mostly repeat each other", file=sys.stderr)
    requests = plan_requests(classes, template, samples_per_class, settings)
    pending = [r for r in requests if r.key not in cache]
    before = estimate(pending, settings)
    print(f"describe: {len(requests)} requests ({len(classes)} classes x {samples_per_class}"
          f" samples, prompt {template.name!r}, server {settings.host}), "
          f"{len(requests) - len(pending)} answered in {cache_path}; "
          f"{before.describe(settings.model)}")
    if dry_run:
        return None
    with tqdm(total=len(pending), desc=f"ask {settings.model}", unit="req",
              disable=not pending) as bar:
        report = ask_all(requests, template, cache, settings, os.environ.get(API_KEY_VARIABLE),
                         progress=bar)
    if pending:
        print(f"describe: {report.answered} answered with {report.asked} request(s): "
              f"{report.prompt_tokens:,} prompt + {report.completion_tokens:,} completion tokens "
              f"used (estimated: about {before.prompt_tokens:,} + at most "
              f"{before.completion_tokens:,})")
    if report.failures:
        # The table is written only when every request has a usable answer: otherwise it would
        # depend on which requests a flaky network let through.
        failed = sorted((r.class_name, r.sample_index, report.failures[r.key])
                        for r in requests if r.key in report.failures)
        print(f"error: {len(failed)} request(s) got no usable answer:", file=sys.stderr)
        for name, sample, reason in failed[:50]:
            print(f"  {name} (sample {sample}): {reason}", file=sys.stderr)
        if len(failed) > 50:
            print(f"  ... and {len(failed) - 50} more (the first 50 are listed)", file=sys.stderr)
        print("Every answer received is cached: rerun to ask only these.", file=sys.stderr)
        raise typer.Exit(1)
    table = descriptions_table(requests, template, cache)
    silent = sorted(set(classes["class_name"]) - set(table["class_name"]))
    if silent:  # e.g. cached answers that a changed parser no longer reads
        print(f"error: {len(silent)} class(es) have no description: {', '.join(silent[:20])}",
              file=sys.stderr)
        raise typer.Exit(1)
    return table
