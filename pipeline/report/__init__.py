"""Our numbers beside the papers' (the `report` stage): Table 1 as CSV, Markdown and plots
(`tables`), the zero-shot baselines per backbone (`zeroshot`), one self-contained HTML page
(`summary`), two experiments compared cell by cell (`compare`), and the published numbers
themselves (`paper`).
"""

from pipeline.report.compare import compare_markdown, compare_table1, params_diff
from pipeline.report.paper import TABLE1, ZERO_SHOT
from pipeline.report.summary import diff_style, png_data_uri, summary_html
from pipeline.report.tables import (RunContext, plot_series, selections, table1, table1_markdown,
                                    table1_png)
from pipeline.report.zeroshot import (METHOD_LABELS, published_as, zero_shot_html,
                                      zero_shot_markdown, zero_shot_table)

__all__ = ["METHOD_LABELS", "RunContext", "TABLE1", "ZERO_SHOT", "compare_markdown",
           "compare_table1", "diff_style", "params_diff", "plot_series", "png_data_uri",
           "published_as", "selections", "summary_html", "table1", "table1_markdown", "table1_png",
           "zero_shot_html", "zero_shot_markdown", "zero_shot_table"]
