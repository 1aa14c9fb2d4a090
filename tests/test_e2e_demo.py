"""End to end: `dvc repro` of the whole demo, and its caching, in a temp copy of the repo.

The demo runs once per CI run: `make demo` (the README's first command) runs it in the
workspace, and these tests start from a copy of that run (its outputs, dvc.lock and DVC cache),
after checking that DVC sees it up to date with this code and these params. Without such a run
(a `make test` alone), the fixture runs the whole `dvc repro` itself: minutes, on 2 CPU cores.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_repo, run_by_hand, run_stages_by_hand

pytestmark = pytest.mark.e2e
NUM_CLASSES = 20
CHANCE = 100.0 / NUM_CLASSES


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def stage_names(repo: Path) -> list[str]:
    """Every stage, foreach items expanded (`clip@demo-tiny`), in dvc.yaml's order: an order in
    which each stage comes after those it depends on."""
    listed = run(repo, sys.executable, "-m", "dvc", "stage", "list", "--name-only").stdout
    return listed.split()


def the_workspace_ran_the_demo() -> bool:
    """Did `make demo` run this code and these params to the end in the workspace?"""
    if not (REPO / "artifacts" / "report" / "cub" / "summary.html").is_file():
        return False
    return json.loads(run(REPO, sys.executable, "-m", "dvc", "status", "--json").stdout) == {}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("e2e") / "fgvc"
    copy_repo(repo)
    reuse = the_workspace_ran_the_demo()
    if reuse:  # the workspace's run: its outputs, its lock and the DVC cache behind them
        shutil.copytree(REPO / "artifacts", repo / "artifacts", symlinks=True)
        shutil.copytree(REPO / ".dvc" / "cache", repo / ".dvc" / "cache")
        shutil.copy2(REPO / "dvc.lock", repo / "dvc.lock")
    run(repo, "git", "init", "-q")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    if reuse:  # every stage ran, and nothing is stale in the copy
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        assert set(stage_names(repo)) <= set(lock)
        assert json.loads(run(repo, sys.executable, "-m", "dvc", "status", "--json").stdout) == {}
    else:
        first = run(repo, sys.executable, "-m", "dvc", "repro")
        assert ran_stages(first.stdout) == set(stage_names(repo))
    return repo


SELECTIONS = ["class_balanced", "global"]  # the paper's, and Hirano's earlier method
BACKBONE = "demo-tiny"  # the adapter chain's (clip.adapter_backbones); demo-micro is scored too
SOURCES = ("captions", "descriptions", "captions_unmapped", "descriptions_unmapped")


def metrics_of(demo: Path, stage: str) -> dict:
    return json.loads((demo / "artifacts" / stage / "cub" / BACKBONE / "metrics.json").read_text())


def table1_of(demo: Path) -> pd.DataFrame:
    table = pd.read_csv(demo / "artifacts" / "report" / "cub" / "table1.csv")
    assert set(table["backbone"]) == {BACKBONE} and set(table["method"]) == {"linear"}
    return table


def test_table1_has_every_cell(demo):
    table = table1_of(demo)
    assert list(table.columns[:8]) == ["backbone", "method", "image_ratio", "text_ratio",
                                       "text_source", "selection", "top1", "top5"]
    # the paper's 30 cells, and 20 of the ablation without the Q-Former (text_mapping: none)
    assert len(table) == 50 * len(SELECTIONS)
    assert table.groupby("selection").size().to_dict() == {s: 50 for s in SELECTIONS}
    for _, chosen in table.groupby("selection"):
        assert chosen.groupby("text_source").size().to_dict() == {
            "none": 10, **{source: 10 for source in SOURCES}}
        assert sorted(chosen[chosen["text_source"] == "none"]["image_ratio"]) == list(range(10, 101, 10))
        for source in SOURCES:
            assert sorted(chosen[chosen["text_source"] == source]["image_ratio"]) == list(range(0, 91, 10))
    assert (table["image_ratio"] + table["text_ratio"] == 100).all()
    assert (table["top5"] >= table["top1"]).all()
    markdown = (demo / "artifacts" / "report" / "cub" / "table1.md").read_text()
    for selection in SELECTIONS:
        assert f"## selection: {selection}" in markdown
    # the paper's numbers beside ours: class-balanced (85.07, 23.78), global (84.80, 27.67)
    for paper in ("85.07", "23.78", "84.80", "27.67"):
        assert f"/ {paper} /" in markdown


def test_summary_html_is_self_contained(demo):
    report = demo / "artifacts" / "report" / "cub"
    page = (report / "summary.html").read_text()
    pngs = [base64.b64decode(data) for data in
            re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    run_info = json.loads((demo / "artifacts" / "zeroshot" / "cub" / BACKBONE / "run.json").read_text())
    pictures = [demo / "artifacts" / "zeroshot" / "cub" / BACKBONE / "pictures" / p["file"]
                for p in run_info["pictures"]]
    assert len(pictures) == yaml.safe_load((demo / "params.yaml").read_text())[
        "zeroshot"]["baselines"]["cbd"]["pictures"]
    figures = [f"table1_{BACKBONE}_{s}.png" for s in SELECTIONS] + [f"fewshot_{BACKBONE}.png"]
    assert pngs == [(report / "figures" / name).read_bytes() for name in figures] + [
        picture.read_bytes() for picture in pictures]
    assert all(png.startswith(b"\x89PNG") for png in pngs)
    zero_shot = metrics_of(demo, "zeroshot")["clip/paper"]  # beside Table 1: zeroshot's rows
    assert (f'<td class="ratio">CLIP zero-shot: paper</td>'
            f"<td>{zero_shot['top1']:.2f}</td><td>{zero_shot['top5']:.2f}</td>") in page
    assert "Table 1: demo world (20 made-up bird species, drawn)" in page and "CUB top-1" not in page
    for paper in ("85.07", "23.78", "84.80", "27.67"):
        assert f"<td>{paper}</td>" in page


def test_numbers_carry_meaning(demo):
    metrics = metrics_of(demo, "evaluate")
    cells = table1_of(demo).set_index(["selection", "image_ratio", "text_source"])
    table = cells.loc["class_balanced"]
    assert metrics["classes"] == NUM_CLASSES
    # 18 to 33% seen over CLIP initialisations; the margin leaves room for another CPU's
    # rounding, which the demo CLIP's training amplifies
    assert metrics_of(demo, "zeroshot")["clip/paper"]["top1"] > 2.5 * CHANCE
    assert table.loc[(100, "none"), "top1"] > 10 * CHANCE
    assert table.loc[(10, "none"), "top1"] > 5 * CHANCE
    for source in SOURCES:  # the unmapped ones: raw CLIP text features
        assert table.loc[(0, source), "top1"] > 2 * CHANCE, source
    # more real images help: the image-only curve falls from 100% to 10%
    assert table.loc[(100, "none"), "top1"] > table.loc[(10, "none"), "top1"]
    # at 100% (and 0%) images both selections keep the same images: the same adapter, up to
    # float rounding in the batched heads
    global_ = cells.loc["global"]
    for cell in ((100, "none"), (0, "captions"), (0, "descriptions")):
        assert abs(global_.loc[cell, "top1"] - table.loc[cell, "top1"]) <= 0.5


def few_shot_table(demo, prior: str) -> pd.DataFrame:
    """The report's few-shot rows of the demo's adapter backbone: the image-only probe and the
    text-prior methods with `prior`."""
    table = pd.read_csv(demo / "artifacts" / "report" / "cub" / "fewshot.csv")
    return table[(table["backbone"] == BACKBONE) & table["prior"].isin(["none", prior])]


def test_text_as_a_prior_beats_the_probe_at_low_shots(demo):
    """The few-shot table on the demo: at 1 shot the probe has one image a class, the methods
    that start from the descriptions' zero-shot classifier are far above it."""
    table = few_shot_table(demo, "attributes")
    one_shot = table[table["shots"] == 1].set_index("method")
    assert (one_shot["seeds"] == 3).all() and (one_shot["top1_std"] >= 0).all()
    for method in ("ensemble", "text_prior", "tip"):
        assert one_shot.loc[method, "top1"] > one_shot.loc["probe", "top1"] + 15, one_shot
    every = table[table["method"].isin(["probe", "ensemble"])]
    by_budget = every.pivot(index="budget", columns="method", values="top1")
    assert (by_budget["ensemble"] >= by_budget["probe"] - 2).all(), by_budget


def test_a_weak_prior_falls_back_toward_the_probe(demo):
    """The demo's weak description set (a third of its traits wrong, as an LLM errs): the
    methods whose prior weight is chosen on the kept images (the ensemble's alpha, the pull of
    text_prior) are never below the image-only probe by more than the seeds' spread (one point
    where a budget has one seed), and the exact set beats the weak one at 1 shot."""
    weak, exact = few_shot_table(demo, "attributes_weak"), few_shot_table(demo, "attributes")
    probe = weak[weak["method"] == "probe"].set_index("budget")
    for method in ("ensemble", "text_prior"):
        cells = weak[weak["method"] == method].set_index("budget")
        spread = np.fmax(cells["top1_std"], probe["top1_std"]).fillna(1.0)
        assert (cells["top1"] >= probe["top1"] - spread).all(), (method, cells, probe)
        one_shot = lambda t: t[(t["method"] == method) & (t["shots"] == 1)]["top1"].item()  # noqa: E731
        assert one_shot(exact) > one_shot(weak) + 3, method


def test_second_repro_runs_nothing(demo):
    again = run(demo, sys.executable, "-m", "dvc", "repro")
    assert ran_stages(again.stdout) == set()
    status = run(demo, sys.executable, "-m", "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}


def test_forced_repro_of_the_demo_changes_no_output(demo):
    """Every stage is seeded, random initialisations included: rerunning them gives the same
    bytes, so a rerun never makes a teammate's cached features or reports stale. Rerun here:
    the stages whose bytes no other test checks twice (the index, the descriptions, the paper's
    adapters, their evaluation, the zero-shot baselines, the report), on one backbone, each as
    `dvc repro -f` runs it (its outputs deleted, then its command) but in this process,
    which spares a torch start-up per stage; `dvc status` then finds every output with the hash
    dvc.lock recorded. Each of the others is checked for the same bytes where it is cheaper:
    drawing the demo world (test_data), the demo CLIPs' training (test_cli), the extract sets
    (test_extraction, test_text_extraction), the Q-Former stage's training (test_qformer) and
    every few-shot method's stage (test_few_shot: twice on one table, and the same bytes with
    or without the mapped rows, as the stage loads them)."""
    lock = yaml.safe_load((demo / "dvc.lock").read_text())["stages"]
    forced_stages = [s for s in lock if s.split("@")[0] in (
        "data", "data_coco", "describe", "describe_control", "report", "suite")
        or s in (f"train_adapter@cub-{BACKBONE}-linear", f"evaluate@cub-{BACKBONE}",
                 f"zeroshot@cub-{BACKBONE}")]  # zeroshot@cub-demo-micro: the same code
    for stage in forced_stages:
        for out in lock[stage]["outs"]:
            path = demo / out["path"]
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    run_stages_by_hand(demo, *forced_stages)
    assert json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout) == {}


def test_metrics_and_plots_show(demo):
    metrics = run(demo, sys.executable, "-m", "dvc", "metrics", "show")
    assert "adapter_top1.image_100" in metrics.stdout and "clip/paper.top1" in metrics.stdout
    assert "zeroshot/cub/demo-tiny/metrics.json" in metrics.stdout and "cbd/attributes" in metrics.stdout
    assert "zeroshot/cub/demo-micro/metrics.json" in metrics.stdout
    assert "evaluate/cub/demo-tiny/metrics.json" in metrics.stdout
    plots = run(demo, sys.executable, "-m", "dvc", "plots", "show", "--json")
    drawn = json.loads(plots.stdout)["data"]
    # the Table-1 plot once (not once more per data file against its row number), the figures
    charts = [name for name, plot in drawn.items() if plot and plot[0]["type"] == "vega"]
    assert "table1_top1_vs_image_ratio" in charts
    assert not [name for name in charts if "/plot/" in name and "train_qformer" not in name]
    lines = {row["line"] for row in drawn["table1_top1_vs_image_ratio"][0]["content"]["data"]["values"]}
    assert lines == {"cub: none", "cub: captions", "cub: descriptions"}
    spec = drawn["table1_top1_vs_image_ratio"][0]["content"]
    assert spec["encoding"]["x"]["field"] == "image_ratio"
    assert spec["encoding"]["x"]["scale"]["reverse"] is True  # 100 % images first, as the PNG
    assert not [name for name in drawn if name.endswith(".png")]  # the same plot: summary.html


def test_evaluate_writes_per_class_accuracy_and_confusion(demo):
    folder = demo / "artifacts" / "evaluate" / "cub" / BACKBONE
    results = pd.read_parquet(folder / "results.parquet").set_index("run")
    per_class = pd.read_parquet(folder / "per_class.parquet")
    confusion = pd.read_parquet(folder / "confusion.parquet")
    methods = yaml.safe_load((demo / "params.yaml").read_text())["train_adapter"]["methods"]
    assert set(results["method"]) == set(per_class["method"]) == set(methods)
    assert per_class.groupby("run").size().eq(NUM_CLASSES).all()
    weighted = per_class.groupby("run").apply(
        lambda g: (g["top1"] * g["test_images"]).sum() / g["test_images"].sum())
    assert (weighted - results.loc[weighted.index, "top1"]).abs().max() < 1e-3
    assert confusion.groupby("run")["count"].sum().eq(per_class.groupby("run")["test_images"].sum()).all()


def test_bench_adapter_runs_on_the_demo(demo, tmp_path):
    """The bench on the demo's artifacts, shortened (100 steps, one timing each way, four heads
    trained alone): it checks that the batched and the one-by-one heads agree, not how fast
    they are."""
    params = yaml.safe_load((demo / "params.yaml").read_text())
    params["train_adapter"]["methods"]["linear"]["steps"] = 100
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run_by_hand(demo, "bench", "adapter", "--repeats", "1", "--sample", "4", "--params",
                      str(tmp_path / "params.yaml"), "--json", str(tmp_path / "bench_adapter.json"))
    heads = 50 * len(SELECTIONS)  # the grid as configured: the ablation's runs too
    assert f"{heads} heads x 100 steps" in out and "sequential / batched =" in out
    figures = json.loads((tmp_path / "bench_adapter.json").read_text())
    assert figures["heads"] == heads and figures["steps"] == 100 and figures["sampled_heads"] == 4
    assert figures["max_weight_difference"] < 1e-4


def test_a_killed_dvc_repro_resumes_where_it_stopped(demo, tmp_path):
    """SIGKILL a real `dvc repro` (and the stage it runs) once it has written the first shard of
    a feature set it re-encodes. The next `dvc repro` reruns only that stage, which keeps the
    shard the killed run finished and computes the rest (run by hand here, where `dvc status`
    finds its outputs changed); the set is byte-identical to before, so nothing downstream
    reruns."""
    features = demo / "artifacts" / "extract" / "coco" / BACKBONE / "coco_images"
    before = {p.name: p.read_bytes() for p in features.iterdir()}
    for name in before:
        (features / name).unlink()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    log = tmp_path / "killed_repro.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=demo, env=env,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own group: the stage dies too
    try:
        deadline = time.monotonic() + 600
        while not list(features.glob("shard-*.parquet")) and process.poll() is None:
            assert time.monotonic() < deadline, "no shard written in 10 minutes"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have ended by itself
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    kept = sorted(p.name for p in features.glob("shard-*.parquet"))
    assert process.returncode == -signal.SIGKILL and 1 <= len(kept) < 3, (  # killed mid-set
        kept, log.read_text()[-2000:])
    assert not (features / "manifest.json").exists()
    # the next `dvc repro` reruns that stage (here by hand, in this process), and then nothing
    # else: the stages that read the set see it changed only until it is back (the last status)
    stage = f"extract_coco_images@{BACKBONE}"
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert "changed outs" in status[stage][0], status
    rerun = run_stages_by_hand(demo, stage)
    assert f"{3 - len(kept)} computed, {len(kept)} kept from an earlier run" in rerun
    assert {p.name: p.read_bytes() for p in features.iterdir()} == before
    status = run(demo, sys.executable, "-m", "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}


def test_adapter_param_change_reruns_only_downstream(demo):
    """DVC sees only the changed method's train_adapter stage changed, not the other methods'
    (and evaluate, which reads the method names: it reruns after any of them anyway). The DVC
    experiment below reruns it and what follows it, and checks that nothing else runs."""
    params_file = demo / "params.yaml"
    shipped = params_file.read_text()
    params = yaml.safe_load(shipped)
    params["train_adapter"]["methods"]["linear"]["lr"] *= 2
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == {f"train_adapter@cub-{BACKBONE}-linear", f"evaluate@cub-{BACKBONE}"}
    params["train_adapter"]["methods"]["tip"]["fixed_beta"] = 2.0
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == {f"train_adapter@cub-{BACKBONE}-linear", f"train_adapter@cub-{BACKBONE}-tip",
                           f"evaluate@cub-{BACKBONE}"}
    params["zeroshot"]["baselines"]["linear_probe"]["val_fraction"] = 0.3
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == {f"train_adapter@cub-{BACKBONE}-linear", f"train_adapter@cub-{BACKBONE}-tip",
                           f"evaluate@cub-{BACKBONE}", "zeroshot@cub-demo-tiny", "zeroshot@cub-demo-micro"}
    params_file.write_text(shipped)
    assert json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout) == {}


def test_report_compares_a_commit_with_a_dvc_experiment(demo):
    """`fgvc report --compare A B` with A a commit and B a DVC experiment name: every Table-1
    cell of both, B - A, and the param that differs. Whatever ran before, this commits the
    current state as A and puts it back afterwards, so the tests around it see what they expect."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(demo, *git, "add", "params.yaml", "dvc.lock")
    run(demo, *git, "commit", "-qm", "A", "--allow-empty")
    table_a = table1_of(demo)
    key = "train_adapter.methods.linear.lr"
    lr = yaml.safe_load((demo / "params.yaml").read_text())["train_adapter"]["methods"]["linear"]["lr"]
    exp = run(demo, sys.executable, "-m", "dvc", "exp", "run", "-n", "lr-x3", "-S", f"{key}={lr * 3}")
    assert ran_stages(exp.stdout) == {f"train_adapter@cub-{BACKBONE}-linear", f"evaluate@cub-{BACKBONE}",
                                      "report@cub", "suite"}
    table_b = table1_of(demo)
    try:
        compare = run_by_hand(demo, "report", "--compare", "HEAD", "lr-x3",
                              "--out-file", "compare.md")  # in this process: no start-up
    finally:  # back to A: its params, lock and (from the cache) outputs
        run(demo, *git, "checkout", "HEAD", "--", "params.yaml", "dvc.lock")
        run(demo, sys.executable, "-m", "dvc", "checkout", "-q")
    assert (demo / "compare.md").read_text() == compare
    rows = [line for line in compare.splitlines() if re.match(r"\| \(\d+, \d+\) \|", line)]
    assert len(rows) == 50 * len(SELECTIONS)
    for selection in SELECTIONS:
        a, b = (t.set_index(["selection", "image_ratio", "text_source"]).loc[(selection, 100, "none"), "top1"]
                for t in (table_a, table_b))
        assert f"| (100, 0) | image only | {a:.2f} | {b:.2f} | {b - a:+.2f} |" in compare
    assert f"## backbone {BACKBONE}, selection class_balanced" in compare
    assert f"| {key} | {json.dumps(lr)} | {json.dumps(lr * 3)} |" in compare
    assert compare.count("| train_adapter.") == 1  # nothing else differs
    status = run(demo, sys.executable, "-m", "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}


def test_qformer_curves_are_logged_with_dvclive(demo):
    """Per-epoch held-out figures as DVCLive plots; the trained Q-Former maps held-out captions
    far closer to their own images than the untrained one did."""
    live = demo / "artifacts" / "train_qformer" / BACKBONE / "live"
    epochs = yaml.safe_load((demo / "params.yaml").read_text())["train_qformer"]["epochs"]
    curve = pd.read_csv(live / "plots" / "metrics" / "val" / "mean_matched_cosine.tsv", sep="\t")
    assert curve["step"].tolist() == list(range(epochs + 1))  # step 0: the untrained model
    assert len(pd.read_csv(live / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")) == epochs
    final = json.loads((live / "metrics.json").read_text())["val"]
    assert final["mean_matched_cosine"] == pytest.approx(curve["mean_matched_cosine"].iloc[-1])
    assert final["mean_matched_cosine"] > curve["mean_matched_cosine"].iloc[0] + 0.3
    recall = pd.read_csv(live / "plots" / "metrics" / "val" / "recall_at_5.tsv", sep="\t")
    assert final["recall_at_5"] > 3 * recall["recall_at_5"].iloc[0]
    plots = run(demo, sys.executable, "-m", "dvc", "plots", "show", "--json")
    assert "mean_matched_cosine" in plots.stdout


def test_token_input_trains_the_qformer_and_the_adapters(demo, tmp_path):
    """`text_input: tokens` end to end, beside the DVC workspace: text sets re-extracted with
    their per-token states, the Q-Former cross-attending to them, the adapters trained on
    captions and descriptions it mapped, and evaluated. The stages run in this process (what
    is checked is their outputs, not their start-up)."""
    params = yaml.safe_load((demo / "params.yaml").read_text())
    params["extract"]["texts"]["tokens"] = True
    params["train_qformer"].update(text_input="tokens", epochs=1)  # the demo's learns in one
    # the mapped texts reach the paper's adapter (the few-shot methods have their own tests)
    params["train_adapter"]["methods"] = {"linear": params["train_adapter"]["methods"]["linear"]}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    features = tmp_path / "extract"
    for target, images in (("coco", "coco_images"), ("cub", "target_images")):
        shutil.copytree(demo / "artifacts" / "extract" / target / BACKBONE / images, features / images)
    for texts in ("coco_captions", "target_captions", "descriptions"):
        out = run_by_hand(demo, "extract", texts, "--params", str(params_file), "--out",
                          str(features / texts))
        assert "per-token states of width 64" in out
    common = ["--params", str(params_file), "--features", str(features)]
    run_by_hand(demo, "train_qformer", *common, "--out", str(tmp_path / "qformer"),
                "--live", str(tmp_path / "live"))
    saved = json.loads((tmp_path / "qformer" / "qformer.json").read_text())
    assert saved["text_input"] == "tokens" and saved["config"]["text_width"] == 64
    assert saved["final"]["mean_matched_cosine"] > saved["untrained"]["mean_matched_cosine"] + 0.3
    run_by_hand(demo, "train_adapter", *common, "--qformer", str(tmp_path / "qformer"),
                "--out", str(tmp_path / "adapters"))
    run_by_hand(demo, "evaluate", *common, "--adapters", str(tmp_path / "adapters"),
                "--out", str(tmp_path / "evaluation"))
    results = pd.read_parquet(tmp_path / "evaluation" / "results.parquet").set_index(
        ["selection", "image_ratio", "text_source", "text_mapping"])
    assert results.loc[("class_balanced", 0, "captions", "qformer"), "top1"] > 2 * CHANCE
    assert results.loc[("class_balanced", 0, "descriptions", "qformer"), "top1"] > 2 * CHANCE


def test_zeroshot_baselines_score_every_backbone_above_chance(demo):
    results = pd.concat(pd.read_parquet(demo / "artifacts" / "zeroshot" / "cub" / b / "results.parquet")
                        for b in ("demo-tiny", "demo-micro"))
    assert set(results["method"]) == {"clip", "cbd", "cupl", "linear_probe"}
    assert (results["top1"] > 1.5 * CHANCE).all(), results[["backbone", "variant", "top1"]]
    tiny = results[(results["backbone"] == "demo-tiny") & (results["method"] != "cupl")
                   ].set_index("variant")  # CuPL scores CBD's sets too: its rows apart
    # descriptions beat the class name on the demo (its species are named at random); the
    # linear probe on every train image is the upper reference
    assert tiny.loc["attributes", "top1"] > tiny.loc["paper", "top1"] + 20
    assert tiny.loc["logistic regression", "top1"] > tiny.loc["attributes", "top1"]
    # WaffleCLIP's controls of the one-trait descriptors, 7 draws each: on the demo it is the
    # descriptors' content that scores, not any text beside the class name
    cbd = tiny[tiny["method"] == "cbd"]
    controls = ["random_words", "random_characters", "waffle_bird", "shuffled"]
    assert (cbd.loc[controls, "draws"] == 7).all() and (cbd.loc[controls, "top1_std"] > 0).all()
    assert (cbd.loc["descriptors", "top1"] > cbd.loc[controls, "top1"] + 10).all(), cbd
    assert cbd.loc[["attributes", "descriptors"], "top1_std"].isna().all()
    details = demo / "artifacts" / "zeroshot" / "cub" / "demo-tiny" / "details"
    explanations = pd.read_parquet(details / "explanations.parquet")
    assert set(explanations["descriptions"]) == {"attributes", "descriptors", *controls}
    assert len(pd.read_parquet(details / "linear_probe.parquet")) == 5  # a row per strength
    table = pd.read_csv(demo / "artifacts" / "report" / "cub" / "zeroshot.csv")
    assert len(table) == len(results)


def test_a_new_target_runs_only_its_own_stages_and_the_suite(demo):
    """Issue 22: a second entry of data.targets (here the demo's birds again, as `{}` reads
    data.target) adds only its own stages, one per (target, backbone) where a backbone is
    involved, and the suite; nothing of the first target reruns. Its zero-shot chain, run by
    hand (in this process, DVC's commands), scores what the first target's scored. The params
    are put back afterwards."""
    params_file = demo / "params.yaml"
    shipped = params_file.read_text()
    params = yaml.safe_load(shipped)
    params["data"]["targets"]["birds"] = {}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
        backbones, chain = list(params["clip"]["backbones"]), params["clip"]["adapter_backbones"]
        describe = params["describe"]
        expected = ({"data@birds", "report@birds", "suite"}
                    | {f"describe@birds-{s}" for s in describe["sets"]}
                    | {f"describe_control@birds-{c}" for c in describe["controls"]}
                    | {f"{stage}@birds-{b}" for b in backbones for stage in (
                        "extract_target_images", "extract_templates", "extract_descriptions",
                        "zeroshot")}
                    | {f"{stage}@birds-{b}" for b in chain
                       for stage in ("extract_target_captions", "evaluate")}
                    | {f"train_adapter@birds-{b}-{m}" for b in chain
                       for m in params["train_adapter"]["methods"]})
        assert set(status) == expected
        chain = [s for s in expected if s.startswith(("data@", "describe"))
                 or s.endswith("@birds-demo-micro") and not s.startswith("evaluate")]
        said = run_stages_by_hand(demo, *chain)  # as dvc repro zeroshot@birds-demo-micro would
        assert "data: CUB_200_2011: 1200 images (600 train, 600 test)" in said
        scored = [pd.read_parquet(demo / "artifacts" / "zeroshot" / target / "demo-micro" /
                                  "results.parquet").set_index("variant")["top1"]
                  for target in ("cub", "birds")]
        pd.testing.assert_series_equal(*scored)
    finally:
        params_file.write_text(shipped)
        run(demo, "git", "checkout", "HEAD", "--", "dvc.lock")
        for folder in (demo / "artifacts").glob("*/birds"):  # the suite reads whole folders
            shutil.rmtree(folder)
        shutil.rmtree(demo / "artifacts" / "data" / "index" / "birds", ignore_errors=True)
    assert json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout) == {}


def test_new_prompts_encode_only_texts_and_a_new_backbone_runs_only_itself(demo):
    """Last: it leaves the workspace changed. A new template set reruns only the template
    extraction, the zeroshot stages and the report, and encodes only its texts. Adding a
    backbone would run only that backbone's stages (with its adapter chain if it joins
    clip.adapter_backbones) and the report. What `dvc repro` would rerun is what `dvc status`
    lists; those stages run by hand here (their commands from DVC's index, in this process:
    no torch start-up each), and `dvc status` after them lists no stage beyond them, so none reads what
    they changed."""
    params_file = demo / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["zeroshot"]["templates"].append("open_clip:OPENAI_IMAGENET_TEMPLATES")
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    rerun = {"extract_templates@cub-demo-tiny", "extract_templates@cub-demo-micro",
             "zeroshot@cub-demo-tiny", "zeroshot@cub-demo-micro", "report@cub", "suite"}
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == rerun - {"report@cub", "suite"}  # they read none of it yet
    said = run_stages_by_hand(demo, *rerun)
    kept = re.findall(r"extract: 20 paper features .*: 0 computed, 1 kept", said)
    new = re.findall(r"extract: 1600 open_clip:OPENAI_IMAGENET_TEMPLATES features .*: "
                     r"2 computed, 0 kept", said)
    assert len(kept) == len(new) == 2  # per backbone: the known sets kept, the new one encoded
    ensemble = pd.read_parquet(demo / "artifacts" / "zeroshot" / "cub" / "demo-tiny" / "results.parquet")
    assert (ensemble["variant"] == "open_clip:OPENAI_IMAGENET_TEMPLATES").sum() == 1
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == rerun  # nothing downstream of them but the report
    params["clip"]["backbones"]["demo-tiny-2"] = {"model": "fgvc-demo-tiny", "pretrained": None}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    scored = {"clip@demo-tiny-2"} | {f"{stage}@cub-demo-tiny-2" for stage in (
        "extract_target_images", "extract_templates", "extract_descriptions", "zeroshot")}
    assert set(status) == scored | rerun  # rerun: still stale in dvc.lock, run by hand above
    params["clip"]["adapter_backbones"].append("demo-tiny-2")
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    chain = {f"{stage}@demo-tiny-2" for stage in (
        "extract_coco_images", "extract_coco_captions", "train_qformer")}
    chain |= {f"{stage}@cub-demo-tiny-2" for stage in ("extract_target_captions", "evaluate")}
    chain |= {f"train_adapter@cub-demo-tiny-2-{method}" for method in params["train_adapter"]["methods"]}
    assert set(status) == scored | chain | rerun
