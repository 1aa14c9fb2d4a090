"""Several targets side by side (the `suite` stage): every zero-shot baseline and every
few-shot method x budget, one top-1 column per target and their mean, as the few-shot papers
report a suite (CoOp, Tip-Adapter: the average over the datasets). The mean is over every
target; a row some target lacks (a description file of one target) has no mean, never one over
fewer targets presented as the suite's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from pipeline.common import write_text
from pipeline.report.tables import format_number

KEYS = ["backbone", "table", "method", "variant", "budget"]


@dataclasses.dataclass
class Suite:
    table: pd.DataFrame  # KEYS, one top-1 column per target, mean
    targets: list[str]
    plot: pd.DataFrame  # every target's Table-1 plot data: line, image_ratio, top1

    def save(self, out: Path) -> None:
        write_text(out / "suite.csv", self.table.to_csv(index=False, float_format="%.2f"))
        write_text(out / "suite.md", self.markdown())
        write_text(out / "plot" / "table1.csv", self.plot.to_csv(index=False,
                                                                float_format="%.2f"))

    def markdown(self) -> str:
        lines = [f"# The suite: {len(self.targets)} target(s), top-1 %", "",
                 "The mean is over every target; a row some target lacks has none.", ""]
        for (backbone, kind), rows in self.table.groupby(["backbone", "table"], sort=False):
            lines += [f"## {kind}, {backbone}", "",
                      "| method | variant | budget | " + " | ".join(self.targets) + " | mean |",
                      "|---|---|---|" + "---:|" * (len(self.targets) + 1)]
            for row in rows.itertuples(index=False):
                values = [format_number(row._asdict()[t]) for t in self.targets]
                lines.append(f"| {row.method} | {row.variant} | {row.budget} | "
                             + " | ".join(values) + f" | {format_number(row.mean)} |")
            lines.append("")
        return "\n".join(lines)

    def summary(self) -> str:
        return (f"{len(self.table)} rows over {len(self.targets)} target(s) "
                f"({', '.join(self.targets)})")


def suite_table(zeroshot: dict[str, pd.DataFrame], fewshot: dict[str, pd.DataFrame]
                ) -> pd.DataFrame:
    """One row per (backbone, table, method, variant, budget), one top-1 column per target
    (`zeroshot`: target -> the zeroshot stage's results of every backbone, concatenated;
    `fewshot`: target -> its report's fewshot.csv), and the mean over every target."""
    long = []
    for target, results in zeroshot.items():
        long.append(results.assign(table="zero-shot", budget="", target=target)
                    [[*KEYS, "target", "top1"]])
    for target, results in fewshot.items():
        long.append(results.rename(columns={"prior": "variant"})
                    .assign(table="few-shot", target=target)[[*KEYS, "target", "top1"]])
    frame = pd.concat(long, ignore_index=True)
    frame["variant"] = frame["variant"].fillna("").astype(str)
    order = frame[KEYS].drop_duplicates()  # the first target's order, then what it lacks
    wide = frame.pivot_table(index=KEYS, columns="target", values="top1", sort=False)
    targets = list(dict.fromkeys([*zeroshot, *fewshot]))
    wide = wide.reindex(columns=targets)
    wide["mean"] = wide.mean(axis=1, skipna=False)
    table = order.merge(wide.reset_index(), on=KEYS, how="left")
    return table.reset_index(drop=True)


def build_suite(zeroshot: dict[str, pd.DataFrame], fewshot: dict[str, pd.DataFrame],
                plots: dict[str, dict[str, pd.DataFrame]]) -> Suite:
    """The suite of every target (`plots`: target -> its report's Table-1 plot data, text
    source -> image_ratio, top1), the plot data in one table, a line per target and source."""
    lines = [series.assign(line=f"{target}: {source}")[["line", "image_ratio", "top1"]]
             for target, sources in plots.items() for source, series in sources.items()]
    plot = (pd.concat(lines, ignore_index=True) if lines else
            pd.DataFrame(columns=["line", "image_ratio", "top1"]))
    return Suite(suite_table(zeroshot, fewshot), list(dict.fromkeys([*zeroshot, *fewshot])), plot)
