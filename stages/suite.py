"""Stage `suite`: every target of `data.targets` side by side, from each target's zero-shot
results (<zeroshot>/<target>/<backbone>/results.parquet) and report (<reports>/<target>/
fewshot.csv and plot/): suite.csv and suite.md (one top-1 column per target and their mean),
and plot/table1.csv (every target's Table-1 plot data, a line per target and text source,
drawn by `dvc plots show`)."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION
from stages.layout import artifact_option, require
from stages.params import load_params


def main(zeroshot: Path = artifact_option("zeroshot", help="Every target's `zeroshot` folder."),
         reports: Path = artifact_option("report", help="Every target's report folder."),
         out: Path = artifact_option("suite", help="Folder for the suite's tables and plots."),
         params: Path = PARAMS_OPTION) -> None:
    """Set the targets side by side: each one's top-1 and the mean over the suite."""
    import pandas as pd

    from pipeline.report import build_suite

    settings = load_params(params)
    scored, fewshot, plots = {}, {}, {}
    for target in settings.data.targets:
        scored[target] = pd.concat([pd.read_parquet(require(
            zeroshot / target / b / "results.parquet", made_by=f"zeroshot@{target}-{b}"))
            for b in settings.clip.backbones], ignore_index=True)
        report = require(reports / target, made_by=f"report@{target}")
        fewshot[target] = pd.read_csv(require(report / "fewshot.csv",
                                              made_by=f"report@{target}"))
        plots[target] = {p.stem: pd.read_csv(p) for p in sorted((report / "plot").glob("*.csv"))}
    suite = build_suite(scored, fewshot, plots)
    suite.save(out)
    print(f"suite: {suite.summary()}")
