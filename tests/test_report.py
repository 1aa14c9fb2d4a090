"""Report: Table 1 against the paper, mean ± std over seeds, the HTML summary, the comparison
of two experiments (pure tables), and `fgvc report` on a hand-made results table and on a
tiny git + DVC repo."""

import base64
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner

from pipeline.common import write_parquet
from pipeline.report.compare import compare_markdown, compare_table1, flatten_params, params_diff
from pipeline.report.paper import TABLE1
from pipeline.report.summary import summary_html
from pipeline.report.tables import RunContext, table1, table1_markdown, table1_png
from pipeline.report.zeroshot import zero_shot_markdown, zero_shot_table
from stages.cli import app

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def table1_grid() -> list[tuple[int, str]]:
    """The 30 (image %, text source) cells of Table 1."""
    return ([(r, "none") for r in range(100, 0, -10)] + [(r, "captions") for r in range(90, -1, -10)]
            + [(r, "descriptions") for r in range(90, -1, -10)])


def fake_results(selections=("class_balanced", "global"), seeds=(0,)) -> pd.DataFrame:
    """One run per cell, selection and seed, with a top-1 that tells them apart: ratio / 2 + 10
    per seed (+ 1 for global), so seeds 0 and 1 give a mean of ratio / 2 + 5 and a std of 7.07."""
    rows = []
    for selection in selections:
        for ratio, source in table1_grid():
            for seed in seeds:
                top1 = ratio / 2 + 10 * seed + (1 if selection == "global" else 0)
                rows.append({"run": f"{selection}-{source}-{ratio}-s{seed}", "image_ratio": ratio,
                             "text_ratio": 100 - ratio, "text_source": source,
                             "selection": selection, "seed": seed, "top1": top1, "top5": top1 + 20})
    return pd.DataFrame(rows)


def test_ratios_stay_whole_percents_when_results_hold_zero_shot_rows():
    # evaluate's results table has a zero-shot row without a ratio, so its ratios load as floats
    results = fake_results(selections=("class_balanced",)).astype({"image_ratio": float})
    cells = table1(results)
    assert cells["image_ratio"].dtype.kind == "i" and cells["text_ratio"].dtype.kind == "i"
    assert cells.to_csv(index=False, float_format="%.2f").splitlines()[1].startswith("100,0,none,")


def test_table1_has_every_cell_of_each_selection_with_the_papers_numbers():
    cells = table1(fake_results())
    assert len(cells) == 60
    for selection in ("class_balanced", "global"):
        chosen = cells[cells["selection"] == selection]
        assert set(zip(chosen["image_ratio"], chosen["text_source"])) == set(table1_grid())
        for row in chosen.itertuples():
            paper = TABLE1[selection].get((row.image_ratio, row.text_source))
            if paper is None:  # Hirano's global selection has no description column
                assert selection == "global" and row.text_source == "descriptions"
                assert math.isnan(row.paper_top1) and math.isnan(row.diff_top1)
            else:
                assert row.paper_top1 == paper
                assert row.diff_top1 == pytest.approx(row.top1 - paper)
    first = cells.iloc[0]  # the paper's order: class_balanced, image only, 100% first
    assert (first["selection"], first["text_source"], first["image_ratio"]) == ("class_balanced", "none", 100)
    assert cells.set_index(["selection", "image_ratio", "text_source"]).loc[
        ("global", 100, "none"), "diff_top1"] == pytest.approx(51.0 - 84.80)
    markdown = table1_markdown(cells, RunContext(references=(("CLIP zero-shot", 18.0, 81.5),)))
    assert markdown.startswith("# Table 1: CUB-200-2011, top-1 %")
    assert "- CLIP zero-shot: 18.00 / 81.50" in markdown
    assert "## selection: class_balanced" in markdown and "## selection: global" in markdown
    assert "/ 85.07 /" in markdown and "/ 84.80 /" in markdown and "/ 23.78 /" in markdown


def test_mean_and_std_over_two_seeds():
    cells = table1(fake_results(selections=("class_balanced",), seeds=(0, 1)))
    assert len(cells) == 30 and (cells["seeds"] == 2).all()
    cell = cells.set_index(["image_ratio", "text_source"]).loc[(50, "captions")]
    assert cell["top1"] == pytest.approx(30.0)  # 25 and 35
    assert cell["top5"] == pytest.approx(50.0)
    assert cell["top1_std"] == pytest.approx(math.sqrt(50.0))  # sample std of (25, 35): 7.07
    assert cell["diff_top1"] == pytest.approx(30.0 - 77.64)
    assert "30.00 ± 7.07 / 77.64 / -47.64" in table1_markdown(cells, RunContext())


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_summary_html_embeds_the_plots_and_the_numbers():
    cells = table1(fake_results(seeds=(0, 1)))
    figures = {selection: table1_png(cells, selection) for selection in ("class_balanced", "global")}
    assert all(png.startswith(PNG_MAGIC) for png in figures.values())
    context = RunContext(references=(("CLIP zero-shot", 18.25, 81.5),))
    page = summary_html([(cells, context, figures)])
    assert embedded_pngs(page) == [figures["class_balanced"], figures["global"]]
    assert "src=\"http" not in page and "<link" not in page  # self-contained
    assert '<td class="ratio">CLIP zero-shot</td><td>18.25</td><td>81.50</td>' in page
    assert "over 2 seeds" in page
    assert "<h2>selection: class_balanced</h2>" in page and "<h2>selection: global</h2>" in page
    assert "<td>85.07</td>" in page and "<td>84.80</td>" in page and "<td>23.78</td>" in page
    assert "<td>55.00 ± 7.07</td>" in page  # (100, 0) class_balanced: 50 and 60
    # -30.07 below the paper: red; a cell above the paper would be green
    assert re.search(r'<td style="background: rgba\(215, 58, 73, [0-9.]+\)">-30.07</td>', page)


def test_summary_html_colours_a_gain_green():
    cells = table1(fake_results(selections=("class_balanced",)))
    cells.loc[0, ["top1", "diff_top1"]] = [86.07, 1.0]
    page = summary_html([(cells, RunContext(), {})])
    assert re.search(r'<td style="background: rgba\(46, 160, 67, 0.18\)">\+1.00</td>', page)
    assert "One seed per cell" in page and "<img" not in page


def test_compare_gives_every_cell_and_the_exact_differences():
    a = table1(fake_results(selections=("class_balanced",)))
    b = table1(fake_results()).copy()
    b["top1"] = b["top1"] + 0.25
    cells = compare_table1(a, b)
    assert len(cells) == 60
    both = cells[cells["selection"] == "class_balanced"]
    assert (both["diff"] == 0.25).all() and (both["top1_b"] - both["top1_a"] == 0.25).all()
    only_b = cells[cells["selection"] == "global"]
    assert only_b["top1_a"].isna().all() and only_b["diff"].isna().all()
    row = cells.set_index(["selection", "image_ratio", "text_source"]).loc[("class_balanced", 60, "descriptions")]
    assert (row["top1_a"], row["top1_b"], row["diff"], row["text_ratio"]) == (30.0, 30.25, 0.25, 40)
    markdown = compare_markdown(cells, params_diff({}, {}), "main", "exp-1")
    assert "| (60, 40) | image + descriptions | 30.00 | 30.25 | +0.25 |" in markdown
    assert "| (60, 40) | image + descriptions | - | 31.25 | - |" in markdown  # global: only B
    assert "mean B − A +0.25" in markdown
    assert "None: A and B have the same params." in markdown


def test_params_diff_lists_only_what_differs():
    a = {"train_adapter": {"lr": 0.001, "seeds": [0], "steps": 500}, "report": {"plot_selection": "x"}}
    b = {"train_adapter": {"lr": 0.003, "seeds": [0, 1], "steps": 500, "new_key": True},
         "report": {"plot_selection": "x"}}
    assert flatten_params(a) == {"train_adapter.lr": 0.001, "train_adapter.seeds": [0],
                                 "train_adapter.steps": 500, "report.plot_selection": "x"}
    diff = params_diff(a, b)
    assert diff.values.tolist() == [["train_adapter.lr", 0.001, 0.003],
                                    ["train_adapter.new_key", "(absent)", True],
                                    ["train_adapter.seeds", [0], [0, 1]]]
    cells = compare_table1(table1(fake_results(selections=("class_balanced",))),
                           table1(fake_results(selections=("class_balanced",))))
    markdown = compare_markdown(cells, diff, "a", "b")
    assert "| train_adapter.lr | 0.001 | 0.003 |" in markdown
    assert "| train_adapter.seeds | [0] | [0, 1] |" in markdown
    assert "steps" not in markdown


def test_compare_refuses_a_table_without_top1():
    with pytest.raises(ValueError, match="lacks the columns"):
        compare_table1(table1(fake_results()), pd.DataFrame({"selection": [], "text_source": []}))


def baseline_rows(backbone: str, model: str, pretrained: str, sets: dict[str, float]) -> list[dict]:
    """A zeroshot stage's results rows: CLIP with the paper's template at 50, CBD per set."""
    rows = [{"method": "clip", "variant": "paper", "top1": 50.0, "top5": 80.0},
            {"method": "linear_probe", "variant": "logistic regression", "top1": 70.0, "top5": 90.0}]
    rows += [{"method": "cbd", "variant": name, "top1": top1, "top5": top1 + 30}
             for name, top1 in sets.items()]
    return [dict(row, backbone=backbone, model=model, pretrained=pretrained, source="s",
                 prompt="p", texts=1, test_images=10, classes=5) for row in rows]


def test_zero_shot_rows_meet_the_published_numbers_they_reproduce():
    sets = {"cbd_file": {"backend": "cbd_json", "path": "x.json"},
            "domain": {"backend": "openai", "prompt": "cbd_domain"},
            "best": {"backend": "openai", "prompt": "cbd_domain_background"},
            "mine": {"backend": "openai", "prompt": "paper"},
            "attrs": {"backend": "attributes"}}
    results = pd.DataFrame(
        baseline_rows("b16", "ViT-B-16", "openai", {s: 55.0 for s in sets})
        + baseline_rows("demo", "fgvc-demo-tiny", "trained here", {"attrs": 60.0})
        + baseline_rows("laion", "ViT-B-16", "laion2b_s34b_b88k", {"cbd_file": 60.0}))
    table = zero_shot_table(results, sets).set_index(["backbone", "variant"])
    assert list(dict.fromkeys(table.index.get_level_values(0))) == ["b16", "demo", "laion"]
    b16 = table.loc["b16"]
    assert (b16.loc["paper", "paper_top1"], b16.loc["paper", "paper_top5"]) == (56.42, 84.85)
    assert b16.loc["paper", "diff_top1"] == pytest.approx(50.0 - 56.42)
    assert (b16.loc["cbd_file", "paper_top1"], b16.loc["cbd_file", "published_as"]) == (57.77, "cbd")
    assert b16.loc["domain", "paper_top1"] == 58.46 and math.isnan(b16.loc["domain", "paper_top5"])
    assert (b16.loc["best", "paper_top1"], b16.loc["best", "paper_top5"]) == (58.78, 87.45)
    assert pd.isna(b16.loc["mine", "published_as"]) and math.isnan(b16.loc["mine", "paper_top1"])
    # no published number for weights or models the papers did not use
    assert table.loc["demo", "paper_top1"].isna().all()
    assert table.loc["laion", "paper_top1"].isna().all()
    markdown = zero_shot_markdown(zero_shot_table(results, sets), "Dataset: x.")
    assert "| b16 (ViT-B-16, openai) | CLIP zero-shot: paper (= CLIP) | s: p | 50.00 / 56.42 / -6.42 |" in markdown


def test_waffle_controls_meet_waffleclips_published_rows_and_show_their_spread():
    """WaffleCLIP published 15 pairs, with and without "bird", and its swapped control, all of
    CBD's file: a control made the same way meets its row (mean ± std over the draws); with
    other pairs, another concept or of another set, none."""
    cbd = {"backend": "control", "of": "cbd"}  # made from CBD's file, as WaffleCLIP's were
    sets = {"cbd": {"backend": "cbd_json", "path": "x.json"},
            "llm": {"backend": "openai", "prompt": "cbd"},
            "waffle": dict(cbd, kind="waffle", pairs=15),
            "waffle_bird": dict(cbd, kind="waffle", pairs=15, concept="bird"),
            "waffle_5": dict(cbd, kind="waffle", pairs=5),
            "waffle_car": dict(cbd, kind="waffle", pairs=15, concept="car"),
            "waffle_llm": {"backend": "control", "of": "llm", "kind": "waffle", "pairs": 15},
            "shuffled": dict(cbd, kind="shuffled"),
            "words": dict(cbd, kind="words")}
    rows = baseline_rows("b32", "ViT-B-32", "openai", {s: 52.0 for s in sets})
    for row in rows:
        if row["method"] == "cbd":
            row.update(top1_std=0.25, top5_std=0.5, draws=7)
    table = zero_shot_table(pd.DataFrame(rows), sets).set_index("variant")
    assert table.loc["waffle", ["published_as", "paper_top1", "paper_top5"]].tolist() == [
        "waffle", 52.39, 83.75]
    assert table.loc["waffle_bird", "paper_top1"] == 52.83
    assert table.loc["shuffled", ["published_as", "paper_top1"]].tolist() == ["shuffled", 52.52]
    assert table.loc[["waffle_5", "waffle_car", "waffle_llm", "words"], "published_as"].isna().all()
    markdown = zero_shot_markdown(zero_shot_table(pd.DataFrame(rows), sets), "Dataset: x.")
    assert "| CBD: waffle (= WaffleCLIP) | s: p | 52.00 ± 0.25 / 52.39 / -0.39 |" in markdown
    assert "CLIP zero-shot: paper (= CLIP) | s: p | 50.00 / 52.00 / -2.00 |" in markdown  # one set: no ±


def write_zeroshot_folder(folder: Path, rows: list[dict], run: dict) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")
    (folder / "run.json").write_text(json.dumps(run))


def test_report_stage_writes_every_output(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    adapters = params["clip"]["adapter_backbones"]
    for backbone in adapters:  # evaluate's results: the linear grid's rows (two seeds), probes
        (tmp_path / "evaluate" / backbone).mkdir(parents=True)
        pd.concat([fake_results(seeds=(0, 1)).assign(method="linear", text_mapping="qformer"),
                   few_shot_rows()], ignore_index=True).to_parquet(
            tmp_path / "evaluate" / backbone / "results.parquet")
    demo = "demo world (20 made-up bird species, drawn)"
    for name, backbone in params["clip"]["backbones"].items():
        write_zeroshot_folder(tmp_path / "zeroshot" / name, baseline_rows(
            name, backbone["model"], "trained here", {"attributes": 60.0}), {
            "dataset": demo, "classes": 20, "test_images": 600, "templates": {"paper": 1},
            "descriptions": {"attributes": {"backend": "attributes"},
                             "llm": {"backend": "openai"}, "shuffled": {"backend": "control"}},
            "pictures": [],
            "backbone": name, "model": backbone["model"], "pretrained": None})
    # the description sets' tables, each saying what wrote it; an LLM set of a base URL with
    # credentials (written before LLMSettings.host cut them), a control without the key
    params["describe"]["sets"]["llm"] = {"backend": "openai", "prompt": "cbd"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    made = {"llm": {"backend": "openai", "prompt": "prompt cbd", "source": "backend openai",
                    "model": "qwen2.5-7b-instruct", "server": "alice:pw@llm.lan:8000",
                    "temperature": 0.7, "max_tokens": 256, "samples_per_class": 10},
            "attributes": {"backend": "attributes", "source": "backend attributes",
                           "prompt": "4 attribute(s) per sentence"}}
    for name in [*params["describe"]["sets"], *params["describe"]["controls"]]:
        metadata = {"fgvc.made_by": json.dumps(made[name])} if name in made else None
        write_parquet(tmp_path / "describe" / f"{name}.parquet",
                      pd.DataFrame({"class_id": [1], "text": ["a bird"]}), metadata)
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--evaluate", str(tmp_path / "evaluate"),
                                 "--zeroshot", str(tmp_path / "zeroshot"), "--out", str(out),
                                 "--describe", str(tmp_path / "describe"),
                                 "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "table1.csv")
    assert len(table) == 60 * len(adapters) and set(table["backbone"]) == set(adapters)
    # 4 decimals: --compare computes B - A from these (2 put one change at -1.66 and -1.67)
    first = (out / "table1.csv").read_text().splitlines()[1].split(",")
    assert len(first[table.columns.get_loc("top1")].split(".")[1]) == 4
    pngs = {p.name: p.read_bytes() for p in (out / "figures").iterdir()}
    assert set(pngs) == {f"table1_{b}_{s}.png" for b in adapters
                         for s in ("class_balanced", "global")} | {
                             f"fewshot_{b}.png" for b in adapters}
    page = (out / "summary.html").read_text()
    assert embedded_pngs(page) == [pngs[f"table1_{b}_{s}.png"] for b in adapters
                                   for s in ("class_balanced", "global")] + [
                                       pngs[f"fewshot_{b}.png"] for b in adapters]
    few_shot = pd.read_csv(out / "fewshot.csv")
    assert set(few_shot["backbone"]) == set(adapters) and len(few_shot) == 6 * len(adapters)
    assert "Few-shot methods per backbone" in page and "| CLAP |" not in page
    # the reference rows beside Table 1 are the zeroshot stage's of the same backbone
    assert '<td class="ratio">CLIP zero-shot: paper</td><td>50.00</td><td>80.00</td>' in page
    # the demo says what it is: not CUB, and attribute sentences are not an LLM's
    for text in (page, (out / "table1.md").read_text()):
        assert f"Table 1: {demo}, backbone {adapters[0]}" in text and "CUB top-1" not in text
        assert "image + attribute sentences" in text and "image + LLM" not in text
    assert len(pd.read_csv(out / "zeroshot.csv")) == 3 * len(params["clip"]["backbones"])
    assert "Zero-shot baselines per backbone" in page and "linear probe" in page
    # laid out for a screen: every table scrolls inside its own box, figures fit the page
    assert page.count("<table") == page.count('<div class="scroll"><table') > 4
    assert "div.scroll { overflow-x: auto;" in page and "img { max-width: 100%;" in page
    assert sorted(p.name for p in (out / "plot").iterdir()) == [
        "captions.csv", "descriptions.csv", "none.csv"]
    # every output that uses description sets says what wrote them, credentials never
    llm = "| llm | LLM descriptions | qwen2.5-7b-instruct | llm.lan:8000 | prompt cbd | 0.7 | 10 |"
    attributes = "| attributes | attribute sentences | - | - | 4 attribute(s) per sentence | - | - |"
    assert llm in (out / "zeroshot.md").read_text()
    for name in ("table1.md", "fewshot.md", "zeroshot.md"):
        text = (out / name).read_text()
        assert "| set | texts | model | server | prompt | temperature | samples |" in text
        assert attributes in text, name
    assert "<td class=\"text\">qwen2.5-7b-instruct</td><td class=\"text\">llm.lan:8000</td>" in page
    assert "| shuffled | not recorded |" in (out / "zeroshot.md").read_text()  # no made_by
    for path in out.rglob("*"):
        assert path.is_dir() or b"alice" not in path.read_bytes() and b":pw@" not in path.read_bytes()
    assert not list(out.rglob("*.tmp"))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def test_compare_reads_two_revs_and_the_workspace_through_dvc(tmp_path, monkeypatch):
    """A tiny git + DVC repo: table1.csv tracked by `dvc add`, params.yaml by git."""
    repo = tmp_path / "repo"
    (repo / "artifacts" / "report").mkdir(parents=True)
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    dvc = [sys.executable, "-m", "dvc"]
    git(repo, "init", "-q")
    subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True, env=env)
    csv = repo / "artifacts" / "report" / "table1.csv"

    def commit(lr: float, shift: float, message: str) -> None:
        (repo / "params.yaml").write_text(yaml.safe_dump({"train_adapter": {"lr": lr, "steps": 5}}))
        table1(fake_results(selections=("class_balanced",))).assign(
            top1=lambda t: t["top1"] + shift).to_csv(csv, index=False, float_format="%.2f")
        subprocess.run([*dvc, "add", "-q", str(csv)], cwd=repo, check=True, env=env)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", message)

    commit(0.001, 0.0, "first")
    git(repo, "tag", "first")
    commit(0.002, 1.5, "second")
    (repo / "params.yaml").write_text(yaml.safe_dump({"train_adapter": {"lr": 0.002, "steps": 7}}))
    monkeypatch.chdir(repo)
    out_file = tmp_path / "compare.md"
    # the repo has no dvc.yaml to take the report folder from: --out names it
    compare = ["report", "--out", "artifacts/report", "--compare"]
    result = runner.invoke(app, [*compare, "first", "HEAD", "--out-file", str(out_file)])
    assert result.exit_code == 0, result.output
    assert "| (100, 0) | image only | 50.00 | 51.50 | +1.50 |" in result.output
    assert "| train_adapter.lr | 0.001 | 0.002 |" in result.output and "steps" not in result.output
    assert out_file.read_text() == result.output
    result = runner.invoke(app, [*compare, "HEAD", "workspace"])
    assert result.exit_code == 0, result.output
    assert "| train_adapter.steps | 5 | 7 |" in result.output and "+0.00" in result.output
    result = runner.invoke(app, [*compare, "HEAD", "no-such-rev"])
    assert result.exit_code == 1 and "error: 'no-such-rev' is neither a git rev" in result.output
    git(repo, "checkout", "-q", "params.yaml")
    git(repo, "checkout", "-q", "-b", "empty", "first")
    git(repo, "rm", "-q", "artifacts/report/table1.csv.dvc")
    git(repo, "commit", "-qm", "no table")
    result = runner.invoke(app, [*compare, "first", "empty"])
    assert result.exit_code == 1 and "error: empty: cannot read artifacts/report/table1.csv" in result.output


def test_the_ablation_adds_its_own_columns_without_paper_numbers():
    results = fake_results(selections=("class_balanced",))
    unmapped = results[results["text_source"] != "none"].assign(
        text_mapping="none", top1=lambda t: t["top1"] + 3,
        run=lambda t: t["run"] + "-unmapped")
    cells = table1(pd.concat([results.assign(text_mapping="qformer"), unmapped]))
    assert len(cells) == 50
    raw = cells.set_index(["image_ratio", "text_source"]).loc[(0, "captions_unmapped")]
    assert raw["top1"] == 3.0 and math.isnan(raw["paper_top1"])
    mapped = cells.set_index(["image_ratio", "text_source"]).loc[(0, "captions")]
    assert mapped["top1"] == 0.0 and mapped["paper_top1"] == TABLE1["class_balanced"][(0, "captions")]
    markdown = table1_markdown(cells, RunContext(text_label="attribute sentences"))
    assert ("| image only (ours / paper / diff) | image + captions (ours / paper / diff) | image + "
            "attribute sentences (ours / paper / diff) | image + captions, no Q-Former (ours / "
            "paper / diff) | image + attribute sentences, no Q-Former (ours / paper / diff) |"
            ) in markdown
    assert "| (0, 100) | - | 0.00 / 24.12 / -24.12 | 0.00 / 23.78 / -23.78 | 3.00 / - / - | 3.00 / - / - |" in markdown
    assert "no Q-Former" not in table1_markdown(table1(results), RunContext())  # off: not shown


def few_shot_rows() -> pd.DataFrame:
    """Probe and ensemble runs at 1 shot (seeds 1, 2) and 10 % (seed 0), hand-scored."""
    rows = []
    for method, gain in (("probe", 0.0), ("ensemble", 15.0)):
        for budget, shots, ratio, seed, top1 in (("1-shot", 1, None, 1, 30.0),
                                                 ("1-shot", 1, None, 2, 40.0),
                                                 ("10%", None, 10, 0, 50.0)):
            rows.append({"method": method, "run": f"{method}-{budget}-{seed}", "budget": budget,
                         "shots": shots, "image_ratio": ratio, "text_ratio": 0,
                         "text_source": "none", "text_mapping": "none",
                         "selection": "class_balanced", "seed": seed, "top1": top1 + gain,
                         "top5": 90.0})
    return pd.DataFrame(rows)


def test_few_shot_table_gives_mean_and_std_per_method_and_budget_beside_the_paper():
    from pipeline.report.few_shot import few_shot_markdown, few_shot_table

    linear = fake_results(selections=("class_balanced",)).assign(method="linear",
                                                                  text_mapping="qformer")
    table = few_shot_table(pd.concat([linear, few_shot_rows()], ignore_index=True))
    assert table["method"].tolist() == ["linear:none", "linear:descriptions", "probe", "probe",
                                        "ensemble", "ensemble"]
    one_shot = table[(table["method"] == "ensemble") & (table["budget"] == "1-shot")].iloc[0]
    assert (one_shot["top1"], one_shot["seeds"]) == (50.0, 2)
    assert one_shot["top1_std"] == pytest.approx(7.0711, abs=1e-4)
    # the paper's adapter at the few-shot ratios only: image only 10 / 2 + 0 = 5 at 10 %
    paper = table[table["method"] == "linear:none"]
    assert paper["budget"].tolist() == ["10%"] and paper["top1"].tolist() == [5.0]
    text = few_shot_markdown(table, "demo")
    assert "| method | 1-shot | 10% |" in text
    assert "| probe + alpha x zero-shot (output ensemble) | **50.0 ± 7.1** | **65.0** |" in text
    assert few_shot_table(linear).empty  # the paper's grid alone: no few-shot table


def test_table1_gains_the_text_prior_method_the_kept_images_chose():
    """Beside Table 1's class-balanced cells: per ratio, the text-prior method with the best
    cross-validated top-1 on the kept images (not the best on the test split), its test top-1
    and spread; methods that choose nothing, and other priors, are no candidates."""
    from pipeline.report.few_shot import best_text_prior

    rows = []
    # (method, prior, ratio, seed, cv_top1, top1): at 10 % tip wins the CV but loses on test
    for method, prior, ratio, seed, cv, top1 in (
            ("ensemble", "llm", 10, 0, 60.0, 70.0), ("ensemble", "llm", 10, 1, 62.0, 74.0),
            ("tip", "llm", 10, 0, 65.0, 66.0), ("tip", "llm", 10, 1, 65.0, 64.0),
            ("ensemble", "llm", 100, 0, 80.0, 81.0), ("text_prior", "llm", 100, 0, 80.0, 85.0),
            ("ensemble", "weak", 100, 0, 99.0, 99.0),  # another prior: not a candidate
            ("zs_lp", "llm", 100, 0, None, 99.0)):  # chooses nothing: no CV top-1
        rows.append({"method": method, "prior": prior, "run": f"{method}-{prior}-{ratio}-{seed}",
                     "budget": f"{ratio}%", "shots": None, "image_ratio": ratio, "seed": seed,
                     "cv_top1": cv, "top1": top1})
    rows.append({"method": "ensemble", "prior": "llm", "run": "e-1shot", "budget": "1-shot",
                 "shots": 1, "image_ratio": None, "seed": 1, "cv_top1": 99.0, "top1": 99.0})
    best = best_text_prior(pd.DataFrame(rows), "llm").set_index("image_ratio")
    assert best.loc[10, "method"] == "tip" and best.loc[10, "top1"] == 65.0
    assert best.loc[10, "top1_std"] == pytest.approx(1.4142, abs=1e-4)
    assert best.loc[100, "method"] == "ensemble"  # a CV tie: the first trained
    assert sorted(best.index) == [10, 100]  # the 1-shot run is no ratio
    cells = table1(fake_results(selections=("class_balanced", "global")))
    markdown = table1_markdown(cells, RunContext(best_prior=best.reset_index(), prior="llm"))
    balanced, global_ = markdown.split("## selection: global")
    assert "best text prior, llm (method chosen by CV on the kept images)" in balanced
    assert "| 65.00 ± 1.41 (tip) |" in balanced and "| 81.00 (ensemble) |" in balanced
    assert "best text prior" not in global_  # the few-shot budgets are class-balanced
    assert best_text_prior(fake_results(), "llm").empty  # no few-shot method trained


def test_the_report_names_a_method_without_prior_as_the_adapters_do():
    from pipeline.adapter.methods import NO_PRIOR
    from pipeline.report import few_shot

    assert few_shot.NO_PRIOR == NO_PRIOR


def test_compare_names_each_side_and_warns_loudly_when_they_are_not_comparable():
    from pipeline.report.compare import dataset_of, mismatches

    a = table1(fake_results(selections=("class_balanced",)))
    cub = {"data": {"root": "data", "target": {"format": "cub", "path": "CUB_200_2011"}}}
    cars = {"data": {"root": "data", "target": {"format": "imagefolder", "path": "cars"}}}
    datasets = (dataset_of(cub), dataset_of(cars))
    assert datasets == ("cub data/CUB_200_2011", "imagefolder data/cars")
    cells = compare_table1(a, a)
    markdown = compare_markdown(cells, params_diff(cub, cars), "main", "cars", datasets)
    assert "A: cub data/CUB_200_2011; B: imagefolder data/cars." in markdown
    assert ("**WARNING: A and B are not the same dataset (A: cub data/CUB_200_2011; B: "
            "imagefolder data/cars): B − A compares different test sets.**") in markdown
    assert "CUB top-1" not in markdown
    assert mismatches(cells, (datasets[0], datasets[0])) == []
    tiny, b16 = a.assign(backbone="demo-tiny"), a.assign(backbone="ViT-B-16")
    assert mismatches(compare_table1(tiny, b16), None) == [
        "A and B have other backbones (A: demo-tiny; B: ViT-B-16): their cells are not compared"]



def test_the_demo_shows_the_papers_numbers_as_a_reference_without_colour():
    """A made-up world in CUB's layout: CUB's published numbers stay beside ours, labelled a
    reference, and no difference is coloured (red and green would read as findings)."""
    cells = table1(fake_results(selections=("class_balanced",)))
    cells.loc[0, ["top1", "diff_top1"]] = [86.07, 1.0]
    page = summary_html([(cells, RunContext(colour_diffs=False), {})])
    assert "background: rgba" not in page and "<td>+1.00</td>" in page
    assert "CUB's paper (reference)" in page and "<td>85.07</td>" in page


def texts_inside(fig) -> list[str]:
    """The title(s), axis labels and legend entries of `fig` whose drawn box leaves the figure
    (empty: nothing would be clipped even without bbox_inches='tight')."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    texts += [t for legend in fig.legends for t in legend.get_texts()]
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    box = fig.bbox
    return [t.get_text() for t in texts if t.get_text() and not (
        box.x0 - 0.5 <= t.get_window_extent(renderer).x0
        and t.get_window_extent(renderer).x1 <= box.x1 + 0.5
        and box.y0 - 0.5 <= t.get_window_extent(renderer).y0
        and t.get_window_extent(renderer).y1 <= box.y1 + 0.5)]


def line_looks(fig) -> list[tuple]:
    """(dash pattern, marker, filled) of every labelled line."""
    return [(str(line._unscaled_dash_pattern), line.get_marker(),
             line.get_markerfacecolor() != "none")
            for ax in fig.axes for line in ax.get_lines()
            if not line.get_label().startswith("_")]


def test_plot_titles_and_legends_fit_and_no_two_lines_look_alike():
    """Issue 25: "... (class_balanced selectio" was cut off, and the paper's dashed captions
    line hid under its LLM line."""
    from pipeline.report.few_shot import few_shot_figure, few_shot_table
    from pipeline.report.tables import table1_figure

    results = fake_results(seeds=(0, 1)).assign(text_mapping="qformer")
    text = results[results["text_source"] != "none"]  # and the ablation's, without Q-Former
    cells = table1(pd.concat([results, text.assign(text_mapping="none")], ignore_index=True))
    context = RunContext(dataset="demo world (20 made-up bird species, drawn)",
                         backbone="ViT-L-14-336-quickgelu", text_label="attribute sentences")
    fig = table1_figure(cells, "class_balanced", context)
    assert texts_inside(fig) == []
    title = fig.axes[0].get_title()
    assert "\n" in title and title.replace("\n", " ").endswith("(class_balanced selection)")
    lines = [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert len(lines) == 8  # 5 of ours (3 + the ablation's 2), 3 of the paper's
    dashes = [str(line._unscaled_dash_pattern) for line in lines]
    markers = [(line.get_marker(), line.get_markerfacecolor() != "none") for line in lines]
    assert len(set(zip(dashes, markers))) == 8
    ours = [i for i, line in enumerate(lines) if "(ours)" in line.get_label()]
    paper = [i for i in range(len(lines)) if i not in ours]
    # the paper's lines differ from each other in dashes and in marker, and from all of ours
    assert len({dashes[i] for i in paper}) == len({markers[i] for i in paper}) == 3
    assert not {dashes[i] for i in paper} & {dashes[i] for i in ours}
    png = table1_png(cells, "class_balanced", context)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    # cropped to what it draws (+ 0.1 in of padding a side), never widened by a long title
    assert 700 < width <= 8.2 * 110 and 400 < height <= 5.7 * 110

    linear = fake_results(selections=("class_balanced",)).assign(method="linear",
                                                                  text_mapping="qformer")
    table = few_shot_table(pd.concat([linear, few_shot_rows()], ignore_index=True))
    fig = few_shot_figure(table, "demo world (20 made-up bird species, drawn), backbone "
                          "ViT-L-14-336-quickgelu: few-shot methods x image budget, a title "
                          "longer than the figure is wide")
    assert texts_inside(fig) == []
    assert fig._suptitle.get_text().count("\n") >= 1
    looks = {look for look in line_looks(fig)}
    assert len(looks) == table.groupby(["method", "prior"]).ngroups == 4


def test_an_llm_set_meets_its_published_row_by_its_provenance_too():
    """The report passes Describe.provenance entries, whose prompt is in words ('prompt
    cbd'): a CBD-prompted LLM set still meets CBD's published row."""
    from pipeline.describe.settings import Describe
    from pipeline.report.zeroshot import published_as

    describe = Describe(sets={"c": {"backend": "openai", "prompt": "cbd"},
                              "d": {"backend": "openai", "prompt": "cbd_domain"}}, controls={})
    assert describe.provenance("c")["prompt"] == "prompt cbd"
    assert published_as("cbd", "c", describe.provenance("c")) == "cbd"
    assert published_as("cbd", "d", describe.provenance("d")) == "domain"
    assert published_as("cbd", "c", {"backend": "openai", "prompt": "cbd"}) == "cbd"


def test_one_vocabulary_names_the_text_sources_in_every_output():
    from pipeline.report.compare import text_kind_of
    from pipeline.report.few_shot import label
    from pipeline.report.labels import source_label, source_text

    kind = "attribute sentences"
    assert RunContext(text_label=kind).labels() == {
        "none": "image only", "captions": "image + captions",
        "descriptions": "image + attribute sentences",
        "captions_unmapped": "image + captions, no Q-Former",
        "descriptions_unmapped": "image + attribute sentences, no Q-Former"}
    assert label("linear:descriptions", texts=kind) == (
        "paper's adapter, image + attribute sentences (Q-Former)")
    assert label("linear:none") == "paper's adapter, image only"
    assert source_text("backend attributes") == kind
    assert source_text("backend openai") == "LLM descriptions"
    assert source_text("control of descriptors") == "control texts of descriptors"
    params = {"train_adapter": {"descriptions": "attributes"},
              "describe": {"sets": {"attributes": {"backend": "attributes"}}}}
    assert text_kind_of(params) == kind and text_kind_of({}) == "descriptions"
    cells = compare_table1(table1(fake_results(selections=("class_balanced",))),
                           table1(fake_results(selections=("class_balanced",))))
    same = compare_markdown(cells, params_diff(params, params), "a", "b", None, (kind, kind))
    assert "| (90, 10) | image + attribute sentences |" in same
    other = compare_markdown(cells, params_diff(params, {}), "a", "b", None,
                             (kind, "LLM descriptions"))
    assert ("| image + descriptions (A: attribute sentences; B: LLM descriptions) |"
            in other)
    assert source_label("descriptions") == "image + descriptions"


def test_provenance_reads_each_tables_made_by_and_refuses_a_broken_one(tmp_path):
    from pipeline.common import InputError
    from pipeline.report.provenance import made_by_of, provenance_table

    good, broken, old = (tmp_path / f"{n}.parquet" for n in ("good", "broken", "old"))
    table = pd.DataFrame({"class_id": [1], "text": ["a bird"]})
    write_parquet(good, table, {"fgvc.made_by": json.dumps(
        {"backend": "openai", "prompt": "prompt cbd", "model": "m", "server": "h:1",
         "temperature": 0.25, "samples_per_class": 3})})
    write_parquet(broken, table, {"fgvc.made_by": "{not json"})
    write_parquet(old, table)
    rows = provenance_table({"good": made_by_of(good, "good"), "old": made_by_of(old, "old")})
    assert rows.values.tolist() == [
        ["good", "LLM descriptions", "m", "h:1", "prompt cbd", "0.25", "3"],
        ["old"] + ["not recorded"] * 6]
    with pytest.raises(InputError, match=r"broken.parquet: schema metadata fgvc.made_by of set "
                                         r"'broken' is not JSON"):
        made_by_of(broken, "broken")
