"""Stages `describe@<target>-<set>`, `describe_file@<set>` and `describe_control@<target>-<set>`:
one set of one target's class descriptions into <out>/<set>.parquet (<out>: the target's
<paths.describe>/<target>/sets/, or controls/ for a control; columns class_id, class_name, text,
source, prompt_id, sample_index), from the backend `describe.sets.<set>` (an LLM, class
attributes) or `describe.files.<set>` (an imported file of the target it names, the stage's
dependency) names, or the control `describe.controls.<set>` makes from its real set
(<sets>/<of>.parquet, the target's sets/). One stage per target and set, so a new prompt asks
the LLM only for that set; `train_adapter.descriptions` names the set the adapters train on,
`zeroshot.descriptions` the sets scored the CBD way. The three stages run this one command.

The LLM's answers are cached outside the workspace, deliberately not a DVC output
(`pipeline.describe.run` says why); the descriptions table is the DVC output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pipeline.common import read_parquet_with_metadata, write_parquet
from stages.common import PARAMS_OPTION, TARGET_OPTION, say
from stages.layout import (describe_stage, require, set_kind, set_table, target_option,
                           target_path)
from stages.params import ParamsError, load_params

PROMPTS = Path("prompts/describe")  # relative to the project root, like dvc.yaml's paths


def main(name: Optional[str] = typer.Argument(None, help="The set to write, a key of "
                                              "describe.sets, files or controls. Default: "
                                              "train_adapter.descriptions."),
         target: Optional[str] = TARGET_OPTION,
         index: Optional[Path] = target_option("data", help="The target's index tables."),
         out: Optional[Path] = target_option("describe", "<sets | controls>", help="Folder to "
                                             "write <set>.parquet into: the target's sets/ "
                                             "(a control's: controls/)."),
         sets: Optional[Path] = typer.Option(None, help="A control's input: the folder of the "
                                             "real sets. Default: --out where it is given, "
                                             "else the target's sets/."),
         prompts: Path = typer.Option(PROMPTS, help="Folder of the prompt files (openai)."),
         cache: Path = typer.Option(None, help="The LLM answer cache (append-only JSONL). "
                                    "Default: $FGVC_CACHE_DIR/llm_answers.jsonl, "
                                    "FGVC_CACHE_DIR defaulting to ~/.cache/fgvc."),
         dry_run: bool = typer.Option(False, "--dry-run",
                                      help="Print the requests still to make, their estimated "
                                      "tokens and cost, and stop before spending anything."),
         params: Path = PARAMS_OPTION) -> None:
    """Write one set of class descriptions: an LLM (OpenAI or any OpenAI-compatible server,
    cached), an imported CBD file, your own file, offline sentences from class attributes, or a
    control made from another set (WaffleCLIP's random descriptors, shuffled texts)."""
    settings = load_params(params)
    config = settings.describe
    name = settings.train_adapter.descriptions if name is None else name
    if name not in config.every_set:
        raise ParamsError(f"describe.sets, files and controls have no set {name!r} "
                          f"(sets: {', '.join(config.every_set)})")
    entry = config.every_set[name]
    named = getattr(entry, "target", None)  # a file describes the target it names
    if named and target and named != target:
        raise ParamsError(f"describe.files.{name}.target: {named!r}, not --target {target!r}")
    target = named or target
    settings = settings.for_target(target)
    target = settings.target
    if name not in config.sets_for(target):
        raise ParamsError(f"describe: set {name!r} is not made for target {target!r} (a file "
                          "describes the target it names, a control that of its set)")
    index = index or target_path("data", target)
    sets = sets or out or target_path("describe", target, "sets")
    out = out or target_path("describe", target, set_kind(name, config))
    classes, _ = read_parquet_with_metadata(require(index / "target_classes.parquet",
                                                    made_by=f"data@{target}"))
    attributes = real = None
    if entry.backend == "control" and not dry_run:  # made from a real set, by its own stage
        real, _ = read_parquet_with_metadata(require(
            sets / f"{entry.of}.parquet", made_by=describe_stage(entry.of, config, target)))
    if entry.backend == "attributes":
        attributes, _ = read_parquet_with_metadata(require(index / "target_attributes.parquet",
                                                           made_by=f"data@{target}"))

    from pipeline.describe import describe_set

    table = describe_set(name, config, classes, attributes, prompts=prompts, cache=cache,
                         dry_run=dry_run, say=say("describe"), real=real)
    if table is None:  # a dry run
        return
    # what wrote it travels with the table: model and server of an LLM set (issue 25)
    write_parquet(out / f"{name}.parquet", table,
                  {"fgvc.made_by": json.dumps(config.made_by(name), sort_keys=True)})
    print(f"describe: set {name!r}: {len(table)} descriptions for {table['class_id'].nunique()} "
          f"classes (backend {config.every_set[name].backend}); e.g. {table['text'].iloc[0]!r}")
