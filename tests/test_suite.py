"""Several targets side by side (`pipeline.report.suite`, the `suite` stage): one top-1 column
per target and the mean over every target, on hand-made result tables."""

import pandas as pd
import pytest

from pipeline.report import build_suite, suite_table


def zero_shot(rows):
    return pd.DataFrame(rows, columns=["backbone", "method", "variant", "top1"])


def few_shot(rows):
    return pd.DataFrame(rows, columns=["backbone", "method", "prior", "budget", "top1"])


ZERO = {"birds": zero_shot([("B-32", "clip", "classname", 50.0), ("B-32", "cbd", "cbd", 60.0),
                            ("B-32", "cbd", "birds_file", 58.0)]),
        "pets": zero_shot([("B-32", "clip", "classname", 80.0), ("B-32", "cbd", "cbd", 90.0)])}
FEW = {"birds": few_shot([("B-32", "probe", "none", "1-shot", 30.0),
                          ("B-32", "ensemble", "cbd", "1-shot", 62.0)]),
       "pets": few_shot([("B-32", "probe", "none", "1-shot", 40.0),
                         ("B-32", "ensemble", "cbd", "1-shot", 88.0)])}


def test_each_target_is_a_column_and_the_mean_is_over_every_target():
    table = suite_table(ZERO, FEW).set_index(["table", "method", "variant", "budget"])
    assert list(table.columns) == ["backbone", "birds", "pets", "mean"]
    assert table.loc[("zero-shot", "clip", "classname", ""), "mean"] == pytest.approx(65.0)
    assert table.loc[("zero-shot", "cbd", "cbd", ""), ["birds", "pets", "mean"]].tolist() == [
        60.0, 90.0, 75.0]
    assert table.loc[("few-shot", "ensemble", "cbd", "1-shot"), "mean"] == pytest.approx(75.0)
    assert table.loc[("few-shot", "probe", "none", "1-shot"), "mean"] == pytest.approx(35.0)
    # a set of one target (its description file): its column only, and no suite mean
    lone = table.loc[("zero-shot", "cbd", "birds_file", "")]
    assert lone["birds"] == 58.0 and pd.isna(lone["pets"]) and pd.isna(lone["mean"])


def test_rows_keep_the_first_targets_order_then_what_it_lacks():
    zero = {"a": zero_shot([("B", "clip", "x", 1.0), ("B", "clip", "y", 2.0)]),
            "b": zero_shot([("B", "clip", "z", 3.0), ("B", "clip", "x", 5.0)])}
    table = suite_table(zero, {"a": few_shot([]), "b": few_shot([])})
    assert table["variant"].tolist() == ["x", "y", "z"]
    assert table["mean"].tolist()[0] == pytest.approx(3.0)


def test_the_suite_writes_its_tables_and_each_targets_plot_data(tmp_path):
    plots = {"birds": {"none": pd.DataFrame({"image_ratio": [100, 50], "top1": [80.0, 70.0]})},
             "pets": {}}
    suite = build_suite(ZERO, FEW, plots)
    suite.save(tmp_path)
    written = pd.read_csv(tmp_path / "suite.csv")
    assert written.shape == (5, 8) and written["mean"].notna().sum() == 4
    markdown = (tmp_path / "suite.md").read_text()
    assert "| method | variant | budget | birds | pets | mean |" in markdown
    assert "| cbd | cbd |  | 60.00 | 90.00 | 75.00 |" in markdown
    assert "| cbd | birds_file |  | 58.00 | - | - |" in markdown
    plot = pd.read_csv(tmp_path / "plot" / "table1.csv")  # one line per target and source
    assert plot.to_dict("list") == {"line": ["birds: none"] * 2, "image_ratio": [100, 50],
                                    "top1": [80.0, 70.0]}
    assert suite.summary() == "5 rows over 2 target(s) (birds, pets)"
