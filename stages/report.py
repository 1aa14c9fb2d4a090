"""Stage `report@<target>`: one target's Table 1 of every adapter backbone and its zero-shot
baselines of every backbone, ours beside the published numbers, each table saying what was run
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

from stages.common import PARAMS_OPTION, TARGET_OPTION, say
from stages.compare import compare_revs
from stages.layout import artifact, require, set_table, shown_path, target_path
from stages.params import ParamsError, load_params

def main(target: Optional[str] = TARGET_OPTION,
         evaluate: Optional[Path] = typer.Option(
             None, help=f"The target's results of `evaluate`, one folder per adapter backbone. "
             f"Default: {shown_path('evaluate')}/<target>."),
         zeroshot: Optional[Path] = typer.Option(
             None, help=f"The target's results of `zeroshot`, one folder per backbone. Default: "
             f"{shown_path('zeroshot')}/<target>."),
         describe: Optional[Path] = typer.Option(
             None, help=f"The target's description sets (`describe`): what wrote each set, "
             f"from its fgvc.made_by metadata. Default: {shown_path('describe')}/<target>."),
         out: Optional[Path] = typer.Option(None, help="Report folder.",
                                            show_default=f"{shown_path('report')}/<target>"),
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
        if out is None:
            out = target_path("report", target or next(iter(load_params(params).data.targets)))
        return compare_revs(*compare, table_path=out / "table1.csv", out_file=out_file)
    if out_file is not None:
        raise ParamsError("--out-file goes with --compare")
    if None in (evaluate, zeroshot, describe, out):
        artifact("report")  # a default path: dvc.yaml names it (or says there is none)
    settings = load_params(params).for_target(target)
    target = settings.target
    evaluate = evaluate or target_path("evaluate", target)
    zeroshot = zeroshot or target_path("zeroshot", target)
    describe = describe or target_path("describe", target)

    import pandas as pd

    from pipeline.report import ZeroShotRun, build_report, made_by_of
    from stages.layout import describe_stage

    made = settings.describe.sets_for(target)  # the target's description sets

    adapters = {b: pd.read_parquet(require(evaluate / b / "results.parquet",
                                           made_by=f"evaluate@{target}-{b}"))
                for b in settings.clip.adapter_backbones}
    runs = {}
    for b in settings.clip.backbones:
        stage = f"zeroshot@{target}-{b}"
        folder = require(zeroshot / b, made_by=stage)
        run = json.loads(require(folder / "run.json", made_by=stage).read_text())
        pictures = {p["file"]: require(folder / "pictures" / p["file"],
                                       made_by=stage).read_bytes()
                    for p in run["pictures"]}
        runs[b] = ZeroShotRun(pd.read_parquet(folder / "results.parquet"), run, pictures)
    described = {name: settings.describe.provenance(name) for name in made}
    made_by = {name: made_by_of(require(set_table(describe, name, settings.describe),
                                        made_by=describe_stage(name, settings.describe, target)),
                                name)  # as its table says
               for name in made}
    report = build_report(adapters, runs, described, settings.train_adapter.descriptions,
                          paper=settings.data.target.format == "cub", settings=settings.report,
                          reference_only=settings.data.is_demo, qformer=settings.has_qformer,
                          made_by=made_by)
    report.save(out or target_path("report", target))
    for line in report.lines:
        say(f"report@{target}")(line)
