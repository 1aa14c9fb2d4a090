"""Our numbers beside the papers' (the `report` stage): Table 1 as CSV, Markdown and plots
(`tables`), one self-contained HTML page (`summary`), two experiments compared cell by cell
(`compare`), and the published numbers themselves (`paper`).
"""

from pipeline.report.compare import compare_markdown, compare_table1, params_diff
from pipeline.report.paper import TABLE1, ZERO_SHOT_CLIP
from pipeline.report.summary import summary_html
from pipeline.report.tables import plot_series, selections, table1, table1_markdown, table1_png

__all__ = ["TABLE1", "ZERO_SHOT_CLIP", "compare_markdown", "compare_table1", "params_diff",
           "plot_series", "selections", "summary_html", "table1", "table1_markdown", "table1_png"]
