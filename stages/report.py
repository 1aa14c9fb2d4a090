"""Stage `report`: Table 1 in the paper's layout, ours beside the paper's numbers.

Outputs in <out>: table1.csv (image_ratio, text_ratio, text_source, selection, top1, top5, ...),
table1.md, summary.html (one self-contained page: the tables with coloured differences and the
plots inlined), figures/table1_<selection>.png (accuracy vs image ratio, the paper's curves
dashed; one per selection run) and plot/<source>.csv (`report.plot_selection`'s lines as DVC
plot data).

`fgvc report --compare A B` instead compares two experiments (git revs, branches, tags, DVC
experiment names, or `workspace`): their table1.csv cell by cell and their params. It writes
nothing under <out>.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from pipeline.common import InputError, write_bytes, write_text
from stages.common import PARAMS_OPTION
from stages.layout import artifact, artifact_option, require, shown_path
from stages.params import ParamsError, load_params

WORKSPACE = "workspace"


def main(results: Optional[Path] = typer.Option(
             None, help=f"Results of `evaluate`. Default: {shown_path('evaluate')}/results.parquet."),
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
        compare_revs(*compare, table_path=out / "table1.csv", out_file=out_file)
        return
    if out_file is not None:
        raise ParamsError("--out-file goes with --compare")

    config = load_params(params).report
    results = artifact("evaluate") / "results.parquet" if results is None else results
    require(results, made_by="evaluate")

    import pandas as pd

    from pipeline.report import (plot_series, selections, summary_html, table1, table1_markdown,
                                 table1_png)

    runs = pd.read_parquet(results)
    zero_shot_row = runs[runs["text_source"] == "zero_shot"].iloc[0]
    zero_shot = {"top1": float(zero_shot_row["top1"]), "top5": float(zero_shot_row["top5"])}
    cells = table1(runs[runs["text_source"] != "zero_shot"])
    if config.plot_selection not in selections(cells):
        print(f"warning: report.plot_selection '{config.plot_selection}' was not trained "
              f"(train_adapter.selection): the DVC plot data will be empty", file=sys.stderr)

    write_text(out / "table1.csv", cells.to_csv(index=False, float_format="%.2f"))
    write_text(out / "table1.md", table1_markdown(cells, zero_shot))
    for source, points in plot_series(cells, config.plot_selection).items():
        write_text(out / "plot" / f"{source}.csv", points.to_csv(index=False, float_format="%.2f"))
    figures = {selection: table1_png(cells, selection) for selection in selections(cells)}
    for selection, png in figures.items():
        write_bytes(out / "figures" / f"table1_{selection}.png", png)
    write_text(out / "summary.html", summary_html(cells, zero_shot, figures))
    print(f"report: {len(cells)} cells ({', '.join(figures)}) -> {out / 'table1.md'}, "
          f"{out / 'summary.html'}")


def load_experiment(rev: str, table_path: Path):
    """An experiment's Table 1 and params, read through DVC at `rev` (WORKSPACE: the files here).

    dvc.api resolves git revs, branches, tags and DVC experiment names alike, and reads a
    DVC-tracked table1.csv from the cache (or the remote) by the hash that rev's dvc.lock names.
    """
    import dvc.api
    import pandas as pd
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    dvc_rev = None if rev == WORKSPACE else rev
    try:
        with dvc.api.open(str(table_path), rev=dvc_rev) as handle:
            table = pd.read_csv(handle)
        params = dvc.api.params_show(rev=dvc_rev)
    except RevError:
        raise InputError(f"'{rev}' is neither a git rev, branch or tag nor a DVC experiment "
                         f"(see `git log --all`, `dvc exp show`), nor '{WORKSPACE}'") from None
    except (DvcException, FileNotFoundError) as error:
        raise InputError(f"{rev}: cannot read {table_path} ({type(error).__name__}: {error}). "
                         "Did the report stage run there? If its outputs are only on a DVC "
                         "remote, `dvc pull` them first.") from None
    return table, params


def compare_revs(rev_a: str, rev_b: str, table_path: Path, out_file: Path | None) -> None:
    from pipeline.report import compare_markdown, compare_table1, params_diff

    table_a, params_a = load_experiment(rev_a, table_path)
    table_b, params_b = load_experiment(rev_b, table_path)
    try:
        cells = compare_table1(table_a, table_b)
    except ValueError as error:
        raise InputError(f"{error} ({table_path})") from None
    markdown = compare_markdown(cells, params_diff(params_a, params_b), rev_a, rev_b)
    print(markdown, end="")
    if out_file is not None:
        write_text(out_file, markdown)
