"""Stage `report`: Table 1 in the paper's layout, ours beside the paper's numbers.

Outputs in <out>: table1.csv (image_ratio, text_ratio, text_source, selection, top1, top5, ...),
table1.md, table1.png (accuracy vs image ratio, the paper's curves dashed) and plot/<source>.csv
(the same lines as DVC plot data).
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, params_or_exit


def main(results: Path = typer.Option(Path("artifacts/evaluate/results.parquet"),
                                      help="Results of `evaluate`."),
         out: Path = typer.Option(Path("artifacts/report"), help="Report folder."),
         params: Path = PARAMS_OPTION) -> None:
    """Write Table 1 (CSV, Markdown, plot) with the paper's numbers beside ours."""
    import pandas as pd

    from pipeline.report import plot_series, save_table1_plot, table1, table1_markdown

    config = params_or_exit(params).report
    runs = pd.read_parquet(results)
    zero_shot = runs[runs["text_source"] == "zero_shot"].iloc[0]
    cells = table1(runs[runs["text_source"] != "zero_shot"])
    (out / "plot").mkdir(parents=True, exist_ok=True)

    def write_text(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)

    write_text(out / "table1.csv", cells.to_csv(index=False, float_format="%.2f"))
    write_text(out / "table1.md", table1_markdown(cells, {"top1": zero_shot["top1"],
                                                          "top5": zero_shot["top5"]}))
    for source, points in plot_series(cells, config.plot_selection).items():
        write_text(out / "plot" / f"{source}.csv", points.to_csv(index=False, float_format="%.2f"))
    save_table1_plot(cells, config.plot_selection, out / "table1.png")
    print(f"report: {len(cells)} cells -> {out / 'table1.md'}")
