"""Our numbers beside the papers' (the `report` stage): Table 1 as CSV, Markdown and plots
(`tables`), the zero-shot baselines per backbone (`zeroshot`), one self-contained HTML page
(`summary`), two experiments compared cell by cell (`compare`), the published numbers themselves
(`paper`), and the stage's entry (`build`: `build_report`). `labels`: the one vocabulary for
text sources every output uses; `plots`: what the plots share (titles and legends that fit,
lines told apart); `provenance`: what wrote each description set, from its table's metadata.
`suite`: several targets side by side (the `suite` stage). `settings`: the `report` params
section. Names load on first use.
"""

from pipeline.config import lazy_exports

_EXPORTS = {
    "ReportFiles": "build", "ZeroShotRun": "build", "build_report": "build",
    "compare_markdown": "compare", "compare_table1": "compare", "dataset_of": "compare",
    "mismatches": "compare", "params_diff": "compare", "text_kind_of": "compare",
    "TABLE1": "paper", "ZERO_SHOT": "paper", "Report": "settings", "diff_style": "summary",
    "png_data_uri": "summary", "summary_html": "summary", "RunContext": "tables",
    "NO_QFORMER": "tables", "plot_series": "tables", "selections": "tables", "table1": "tables",
    "table1_markdown": "tables", "table1_png": "tables", "METHOD_LABELS": "zeroshot",
    "published_as": "zeroshot", "made_by_of": "provenance", "provenance_table": "provenance",
    "source_label": "labels", "text_kind": "labels", "zero_shot_html": "zeroshot", "zero_shot_markdown": "zeroshot",
    "zero_shot_table": "zeroshot", "Suite": "suite", "build_suite": "suite",
    "suite_table": "suite",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
