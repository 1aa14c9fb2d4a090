"""Stage `report`: Table 1 in the paper's layout and the zero-shot baselines of every
backbone, ours beside the published numbers, each table saying what was run.

Outputs in <out>: table1.csv (image_ratio, text_ratio, text_source, selection, top1, top5, ...),
table1.md, zeroshot.csv and zeroshot.md (SPEC section 4's comparison, one row per backbone and
baseline), summary.html (one self-contained page: the tables with coloured differences, the plots
and the CBD explanation pictures inlined), figures/table1_<selection>.png (accuracy vs image
ratio, the paper's curves dashed; one per selection run) and plot/<source>.csv
(`report.plot_selection`'s lines as DVC plot data).

`fgvc report --compare A B` instead compares two experiments (git revs, branches, tags, DVC
experiment names, or `workspace`): their table1.csv cell by cell and their params. It writes
nothing under <out>.
"""

from __future__ import annotations

import html
import json
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
         zeroshot: Optional[Path] = typer.Option(
             None, help=f"Zero-shot results, one folder per backbone. Default: "
             f"{shown_path('zeroshot')}."),
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

    settings = load_params(params)
    config = settings.report
    results = artifact("evaluate") / "results.parquet" if results is None else results
    require(results, made_by="evaluate")
    zeroshot = artifact("zeroshot") if zeroshot is None else zeroshot
    backbones = list(settings.clip.backbones)
    for name in backbones:
        require(zeroshot / name / "results.parquet", made_by=f"zeroshot@{name}")

    import pandas as pd

    from pipeline.report import (diff_style, plot_series, selections, summary_html, table1,
                                 table1_markdown, table1_png, zero_shot_html, zero_shot_markdown,
                                 zero_shot_table)

    runs = pd.read_parquet(results)
    zero_shot_row = runs[runs["text_source"] == "zero_shot"].iloc[0]
    baselines = pd.concat([pd.read_parquet(zeroshot / name / "results.parquet")
                           for name in backbones], ignore_index=True)
    run_info = json.loads((zeroshot / settings.clip.backbone / "run.json").read_text())
    context = run_context(settings, run_info, zero_shot_row,
                          baselines[baselines["backbone"] == settings.clip.backbone])
    # The published numbers are CUB's: beside another target's they would mislead.
    cells = table1(runs[runs["text_source"] != "zero_shot"], **({} if context.paper else
                                                               {"paper": {}}))
    if config.plot_selection not in selections(cells):
        print(f"warning: report.plot_selection '{config.plot_selection}' was not trained "
              f"(train_adapter.selection): the DVC plot data will be empty", file=sys.stderr)

    write_text(out / "table1.csv", cells.to_csv(index=False, float_format="%.2f"))
    write_text(out / "table1.md", table1_markdown(cells, context))
    for source, points in plot_series(cells, config.plot_selection).items():
        write_text(out / "plot" / f"{source}.csv", points.to_csv(index=False, float_format="%.2f"))
    figures = {selection: table1_png(cells, selection, context) for selection in selections(cells)}
    for selection, png in figures.items():
        write_bytes(out / "figures" / f"table1_{selection}.png", png)

    sets = {name: entry.model_dump(exclude_none=True)
            for name, entry in settings.describe.every_set.items()}
    baseline_table = zero_shot_table(baselines, sets, published=context.paper)
    what_ran = (f"Dataset: {run_info['dataset']}, {run_info['test_images']} test images "
                f"(chance {100 / run_info['classes']:.1f}%). Description sets: "
                + "; ".join(_describe_set(name, sets[name]) for name in run_info["descriptions"])
                + ". Template sets: " + ", ".join(f"{name} ({count})" for name, count
                                                   in run_info["templates"].items()) + ".")
    write_text(out / "zeroshot.csv", baseline_table.to_csv(index=False, float_format="%.2f"))
    write_text(out / "zeroshot.md", zero_shot_markdown(baseline_table, what_ran))
    sections = [("Zero-shot baselines per backbone, ours vs the published numbers",
                 f"<p>{html.escape(what_ran)}</p>" + zero_shot_html(baseline_table, diff_style))]
    pictures = _pictures_html(zeroshot / settings.clip.backbone, run_info)
    if pictures:
        sections.append((f"Why CBD decided: test images of {settings.clip.backbone}", pictures))
    write_text(out / "summary.html", summary_html(cells, context, figures, sections))
    print(f"report: {len(cells)} cells ({', '.join(figures)}), {len(baseline_table)} zero-shot "
          f"rows ({len(backbones)} backbones) -> {out / 'table1.md'}, {out / 'zeroshot.md'}, "
          f"{out / 'summary.html'}")


TEXT_LABELS = {"openai": "LLM", "attributes": "attribute sentences",
               "cbd_json": "CBD descriptors", "file": "own descriptions"}


def _describe_set(name: str, entry: dict) -> str:
    """'attributes (backend attributes)', 'cbd (backend openai, prompt cbd)'."""
    details = [f"backend {entry['backend']}"]
    if "prompt" in entry:
        details.append(f"prompt {entry['prompt']}")
    if "path" in entry:
        details.append(f"file {Path(entry['path']).name}")
    return f"{name} ({', '.join(details)})"


def run_context(settings, run_info: dict, zero_shot_row, baselines):
    """What Table 1 was made from, and the baselines of its backbone beside it."""
    from pipeline.report import METHOD_LABELS, RunContext

    backbone = settings.clip.backbones[settings.clip.backbone]
    chosen = settings.describe.every_set[settings.describe.set]
    references = [("CLIP zero-shot, extract.class_prompts (evaluate)",
                   float(zero_shot_row["top1"]), float(zero_shot_row["top5"]))]
    references += [(f"{METHOD_LABELS[row.method]}: {row.variant}", float(row.top1),
                    float(row.top5)) for row in baselines.itertuples()]
    return RunContext(
        dataset=run_info["dataset"], test_images=run_info["test_images"],
        clip=f"{backbone.model} ({backbone.pretrained or 'trained here'}), backbone "
             f"{settings.clip.backbone!r}",
        text_label=TEXT_LABELS[chosen.backend],
        descriptions=_describe_set(settings.describe.set, chosen.model_dump(exclude_none=True)),
        references=tuple(references), paper=settings.data.target.format == "cub")


def _pictures_html(folder: Path, run_info: dict) -> str:
    """The CBD explanation pictures of one backbone, inlined."""
    from pipeline.report import png_data_uri

    parts = []
    for picture in run_info.get("pictures", []):
        png = require(folder / "pictures" / picture["file"],
                      made_by=f"zeroshot@{folder.name}").read_bytes()
        parts.append(f'<p><img alt="CBD explanation of test image {picture["image_id"]}" '
                     f'src="{png_data_uri(png)}"></p>')
    return "\n".join(parts)


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
