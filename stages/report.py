"""Stage `report`: Table 1 of every adapter backbone and the zero-shot baselines of every
backbone, ours beside the published numbers, each table saying what was run
(`pipeline.report.build` lists the files).

`fgvc report --compare A B` instead compares two experiments (git revs, branches, tags, DVC
experiment names, or `workspace`): their table1.csv cell by cell and their params. It writes
nothing under <out>.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from stages.common import PARAMS_OPTION, say
from stages.compare import compare_revs
from stages.layout import artifact, artifact_option, require, shown_path
from stages.params import ParamsError, load_params

def main(evaluate: Optional[Path] = typer.Option(
             None, help=f"Results of `evaluate`, one folder per adapter backbone. Default: "
             f"{shown_path('evaluate')}."),
         zeroshot: Optional[Path] = typer.Option(
             None, help=f"Results of `zeroshot`, one folder per backbone. Default: "
             f"{shown_path('zeroshot')}."),
         describe: Optional[Path] = typer.Option(
             None, help=f"The description sets' tables (`describe`): what wrote each set, from "
             f"its fgvc.made_by metadata. Default: {shown_path('describe')}."),
         out: Path = artifact_option("report", help="Report folder."),
         params: Path = PARAMS_OPTION,
         compare: Optional[tuple[str, str]] = typer.Option(
             None, "--compare", metavar="A B",
             help="Compare two experiments instead (git revs, branches, tags, DVC experiment "
                  "names, or 'workspace'): every Table-1 cell of A and B, B - A, and the params "
                  "that differ. Reads <out>/table1.csv of each through DVC; writes no report."),
         out_file: Optional[Path] = typer.Option(
             None, help="With --compare: also write the Markdown comparison to this file.")
         ) -> None:
    """Write Table 1 (CSV, Markdown, HTML summary, plots) with the paper's numbers beside ours."""
    if compare is not None:
        return compare_revs(*compare, table_path=out / "table1.csv", out_file=out_file)
    if out_file is not None:
        raise ParamsError("--out-file goes with --compare")
    settings = load_params(params)
    evaluate, zeroshot = evaluate or artifact("evaluate"), zeroshot or artifact("zeroshot")
    describe = describe or artifact("describe")

    import pandas as pd

    from pipeline.report import ZeroShotRun, build_report, made_by_of
    from stages.layout import describe_stage

    adapters = {b: pd.read_parquet(require(evaluate / b / "results.parquet",
                                           made_by=f"evaluate@{b}"))
                for b in settings.clip.adapter_backbones}
    runs = {}
    for b in settings.clip.backbones:
        folder = require(zeroshot / b, made_by=f"zeroshot@{b}")
        run = json.loads(require(folder / "run.json", made_by=f"zeroshot@{b}").read_text())
        pictures = {p["file"]: require(folder / "pictures" / p["file"],
                                       made_by=f"zeroshot@{b}").read_bytes()
                    for p in run["pictures"]}
        runs[b] = ZeroShotRun(pd.read_parquet(folder / "results.parquet"), run, pictures)
    described = {name: settings.describe.provenance(name) for name in settings.describe.every_set}
    made_by = {name: made_by_of(require(describe / f"{name}.parquet",  # as its table says
                                        made_by=describe_stage(name, settings.describe)), name)
               for name in settings.describe.every_set}
    report = build_report(adapters, runs, described, settings.train_adapter.descriptions,
                          paper=settings.data.target.format == "cub", settings=settings.report,
                          reference_only=settings.data.is_demo, qformer=settings.has_qformer,
                          made_by=made_by)
    report.save(out)
    for line in report.lines:
        say("report")(line)
