"""End to end: `dvc repro` of the whole demo in a temp copy of the repo, and its caching.

Minutes long: it trains the demo CLIP, the Q-Former and all adapters on 2 CPU cores.
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

import pandas as pd
import pytest
import yaml

from conftest import copy_repo

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


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("e2e") / "fgvc"
    copy_repo(repo)
    run(repo, "git", "init", "-q")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    first = run(repo, sys.executable, "-m", "dvc", "repro")
    assert ran_stages(first.stdout) == set(stage_names(repo))
    return repo


SELECTIONS = ["class_balanced", "global"]  # the paper's, and Hirano's earlier method


def test_table1_has_every_cell(demo):
    table = pd.read_csv(demo / "artifacts" / "report" / "table1.csv")
    assert list(table.columns[:6]) == ["image_ratio", "text_ratio", "text_source", "selection",
                                       "top1", "top5"]
    # the paper's 30 cells, and 20 of the ablation without the Q-Former (text_mapping: none)
    assert len(table) == 50 * len(SELECTIONS)
    assert table.groupby("selection").size().to_dict() == {s: 50 for s in SELECTIONS}
    for _, chosen in table.groupby("selection"):
        assert chosen.groupby("text_source").size().to_dict() == {
            "llm": 10, "none": 10, "reed": 10, "llm_unmapped": 10, "reed_unmapped": 10}
        assert sorted(chosen[chosen["text_source"] == "none"]["image_ratio"]) == list(range(10, 101, 10))
        for source in ("reed", "llm", "reed_unmapped", "llm_unmapped"):
            assert sorted(chosen[chosen["text_source"] == source]["image_ratio"]) == list(range(0, 91, 10))
    assert (table["image_ratio"] + table["text_ratio"] == 100).all()
    assert (table["top5"] >= table["top1"]).all()
    markdown = (demo / "artifacts" / "report" / "table1.md").read_text()
    for selection in SELECTIONS:
        assert f"## selection: {selection}" in markdown
    # the paper's numbers beside ours: class-balanced (85.07, 23.78), global (84.80, 27.67)
    for paper in ("85.07", "23.78", "84.80", "27.67"):
        assert f"/ {paper} /" in markdown


def test_summary_html_is_self_contained(demo):
    report = demo / "artifacts" / "report"
    page = (report / "summary.html").read_text()
    pngs = [base64.b64decode(data) for data in
            re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    run_info = json.loads((demo / "artifacts" / "zeroshot" / "demo-tiny" / "run.json").read_text())
    pictures = [demo / "artifacts" / "zeroshot" / "demo-tiny" / "pictures" / p["file"]
                for p in run_info["pictures"]]
    assert len(pictures) == yaml.safe_load((demo / "params.yaml").read_text())[
        "zeroshot"]["explanations"]["pictures"]
    assert pngs == [(report / "figures" / f"table1_{s}.png").read_bytes() for s in SELECTIONS] + [
        picture.read_bytes() for picture in pictures]
    assert all(png.startswith(b"\x89PNG") for png in pngs)
    zero_shot = json.loads((demo / "artifacts" / "evaluate" / "metrics.json").read_text())["zero_shot_clip"]
    assert (f'<td class="ratio">CLIP zero-shot, extract.class_prompts (evaluate)</td>'
            f"<td>{zero_shot['top1']:.2f}</td><td>{zero_shot['top5']:.2f}</td>") in page
    assert "Table 1: demo world (20 made-up bird species, drawn)" in page and "CUB top-1" not in page
    for paper in ("85.07", "23.78", "84.80", "27.67"):
        assert f"<td>{paper}</td>" in page


def test_numbers_carry_meaning(demo):
    metrics = json.loads((demo / "artifacts" / "evaluate" / "metrics.json").read_text())
    cells = pd.read_csv(demo / "artifacts" / "report" / "table1.csv").set_index(
        ["selection", "image_ratio", "text_source"])
    table = cells.loc["class_balanced"]
    assert metrics["classes"] == NUM_CLASSES
    # 18 to 33% seen over CLIP initialisations; the margin leaves room for another CPU's
    # rounding, which the demo CLIP's training amplifies
    assert metrics["zero_shot_clip"]["top1"] > 2.5 * CHANCE
    assert table.loc[(100, "none"), "top1"] > 10 * CHANCE
    assert table.loc[(10, "none"), "top1"] > 5 * CHANCE
    assert table.loc[(0, "reed"), "top1"] > 2 * CHANCE
    assert table.loc[(0, "llm"), "top1"] > 2 * CHANCE
    assert table.loc[(0, "reed_unmapped"), "top1"] > 2 * CHANCE  # raw CLIP text features
    assert table.loc[(0, "llm_unmapped"), "top1"] > 2 * CHANCE
    # more real images help: the image-only curve falls from 100% to 10%
    assert table.loc[(100, "none"), "top1"] > table.loc[(10, "none"), "top1"]
    # at 100% (and 0%) images both selections keep the same images: the same adapter, up to
    # float rounding in the batched heads
    global_ = cells.loc["global"]
    for cell in ((100, "none"), (0, "reed"), (0, "llm")):
        assert abs(global_.loc[cell, "top1"] - table.loc[cell, "top1"]) <= 0.5


def test_second_repro_runs_nothing(demo):
    again = run(demo, sys.executable, "-m", "dvc", "repro")
    assert ran_stages(again.stdout) == set()
    status = run(demo, sys.executable, "-m", "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}


def output_hashes(repo: Path) -> dict[tuple[str, str], str]:
    """(stage, output path) -> the hash dvc.lock records for it."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {(stage, out["path"]): out["md5"] for stage, entry in lock.items()
            for out in entry.get("outs", [])}


def test_forced_repro_of_the_demo_changes_no_output(demo):
    """Every stage is seeded, random initialisations included: rerunning all of them gives
    the same bytes, so a rerun never makes a teammate's cached features or reports stale. The
    feature sets persist between runs (to resume), so they are emptied first: each is
    encoded again from scratch. Left out to keep CI short, each checked for the same bytes
    elsewhere: the demo CLIPs' training (test_cli), drawing the demo world (test_data) and the
    extract sets (test_extraction; the zeroshot stages here encode images and texts again)."""
    before = output_hashes(demo)
    stages = stage_names(demo)
    backbones = [s.split("@")[1] for s in stages if s.startswith("zeroshot@")]
    for name in backbones:
        shutil.rmtree(demo / "artifacts" / "zeroshot" / name / "features")
    forced_stages = [s for s in stages if s.split("@")[0] not in ("demo", "clip", "extract")]
    forced = run(demo, sys.executable, "-m", "dvc", "repro", "-f", "-s", *forced_stages)
    assert ran_stages(forced.stdout) == set(forced_stages)
    for name in backbones:  # every feature set encoded from scratch
        line = re.search(f"zeroshot@{name}: features .*", forced.stdout).group(0)
        assert "cub_images" in line and set(re.findall(r"(\d+) reused", line)) == {"0"}, line
    assert set(before) == set(output_hashes(demo)) and output_hashes(demo) == before


def test_metrics_and_plots_show(demo):
    metrics = run(demo, sys.executable, "-m", "dvc", "metrics", "show")
    assert "zero_shot_clip.top1" in metrics.stdout and "adapter_top1.image_100" in metrics.stdout
    assert "zeroshot/demo-tiny/metrics.json" in metrics.stdout and "cbd/attributes" in metrics.stdout
    plots = run(demo, sys.executable, "-m", "dvc", "plots", "show", "--json")
    drawn = json.loads(plots.stdout)["data"]
    # the Table-1 plot once (not once more per data file against its row number), the figures
    charts = [name for name, plot in drawn.items() if plot and plot[0]["type"] == "vega"]
    assert "table1_top1_vs_image_ratio" in charts
    assert not [name for name in charts if "artifacts/report/plot" in name]
    spec = drawn["table1_top1_vs_image_ratio"][0]["content"]
    assert spec["encoding"]["x"]["field"] == "image_ratio"
    assert spec["encoding"]["x"]["scale"]["reverse"] is True  # 100 % images first, as the PNG
    assert not [name for name in drawn if name.endswith(".png")]  # the same plot: summary.html


def test_evaluate_writes_per_class_accuracy_and_confusion(demo):
    results = pd.read_parquet(demo / "artifacts" / "evaluate" / "results.parquet").set_index("run")
    per_class = pd.read_parquet(demo / "artifacts" / "evaluate" / "per_class.parquet")
    confusion = pd.read_parquet(demo / "artifacts" / "evaluate" / "confusion.parquet")
    assert per_class.groupby("run").size().eq(NUM_CLASSES).all()
    weighted = per_class.groupby("run").apply(
        lambda g: (g["top1"] * g["test_images"]).sum() / g["test_images"].sum())
    assert (weighted - results.loc[weighted.index, "top1"]).abs().max() < 1e-3
    assert confusion.groupby("run")["count"].sum().eq(per_class.groupby("run")["test_images"].sum()).all()


def test_bench_adapter_runs_on_the_demo(demo, tmp_path):
    """The bench on the demo's artifacts, shortened (100 steps, one timing each way): it checks
    that the batched and the one-by-one heads agree, not how fast they are."""
    params = yaml.safe_load((demo / "params.yaml").read_text())
    params["train_adapter"]["steps"] = 100
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(demo, "fgvc", "bench", "adapter", "--repeats", "1", "--params",
                 str(tmp_path / "params.yaml"), "--json", str(tmp_path / "bench_adapter.json"))
    assert "60 heads x 100 steps" in result.stdout and "sequential / batched =" in result.stdout
    figures = json.loads((tmp_path / "bench_adapter.json").read_text())
    assert figures["heads"] == 30 * len(SELECTIONS) and figures["steps"] == 100
    assert figures["max_weight_difference"] < 1e-4


def test_a_killed_dvc_repro_resumes_where_it_stopped(demo, tmp_path):
    """SIGKILL a real `dvc repro` (and the stage it runs) once it has written the first shard of
    a feature set it re-encodes. The next `dvc repro` reruns only that stage, which keeps the
    shard the killed run finished and computes the rest; the set is byte-identical to before,
    so nothing downstream reruns."""
    features = demo / "artifacts" / "extract" / "coco_images"
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
    rerun = run(demo, sys.executable, "-m", "dvc", "repro")
    assert ran_stages(rerun.stdout) == {"extract@coco_images"}
    assert f"{3 - len(kept)} computed, {len(kept)} kept from an earlier run" in rerun.stdout
    assert {p.name: p.read_bytes() for p in features.iterdir()} == before
    status = run(demo, sys.executable, "-m", "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}


def test_adapter_param_change_reruns_only_downstream(demo):
    """DVC sees only train_adapter changed (the DVC experiment below reruns it and what follows
    it, and checks that nothing else runs)."""
    params_file = demo / "params.yaml"
    shipped = params_file.read_text()
    params = yaml.safe_load(shipped)
    params["train_adapter"]["lr"] = params["train_adapter"]["lr"] * 2
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == {"train_adapter"}
    params["zeroshot"]["linear_probe"]["val_fraction"] = 0.3
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == {"train_adapter", "zeroshot@demo-tiny", "zeroshot@demo-micro"}
    params_file.write_text(shipped)
    assert json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout) == {}


def test_report_compares_a_commit_with_a_dvc_experiment(demo):
    """`fgvc report --compare A B` with A a commit and B a DVC experiment name: every Table-1
    cell of both, B - A, and the param that differs. Whatever ran before, this commits the
    current state as A and puts it back afterwards, so the tests around it see what they expect."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(demo, *git, "add", "params.yaml", "dvc.lock")
    run(demo, *git, "commit", "-qm", "A", "--allow-empty")
    table_a = pd.read_csv(demo / "artifacts" / "report" / "table1.csv")
    lr = yaml.safe_load((demo / "params.yaml").read_text())["train_adapter"]["lr"]
    exp = run(demo, sys.executable, "-m", "dvc", "exp", "run", "-n", "lr-x3",
              "-S", f"train_adapter.lr={lr * 3}")
    assert ran_stages(exp.stdout) == {"train_adapter", "evaluate", "report"}
    table_b = pd.read_csv(demo / "artifacts" / "report" / "table1.csv")
    try:
        compare = run(demo, "fgvc", "report", "--compare", "HEAD", "lr-x3",
                      "--out-file", "compare.md").stdout
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
    assert f"| train_adapter.lr | {json.dumps(lr)} | {json.dumps(lr * 3)} |" in compare
    assert compare.count("| train_adapter.") == 1  # nothing else differs
    status = run(demo, sys.executable, "-m", "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}


def test_qformer_curves_are_logged_with_dvclive(demo):
    """Per-epoch held-out figures as DVCLive plots; the trained Q-Former maps held-out captions
    far closer to their own images than the untrained one did."""
    live = demo / "artifacts" / "train_qformer" / "live"
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
    captions and descriptions it mapped, and evaluated."""
    params = yaml.safe_load((demo / "params.yaml").read_text())
    params["extract"]["texts"]["tokens"] = True
    params["train_qformer"].update(text_input="tokens", epochs=1)  # the demo's learns in one
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    features = tmp_path / "extract"
    for images in ("coco_images", "cub_images", "class_prompts"):
        shutil.copytree(demo / "artifacts" / "extract" / images, features / images)
    for texts in ("coco_captions", "reed_captions", "descriptions"):
        out = run(demo, "fgvc", "extract", texts, "--params", str(params_file), "--out",
                  str(features / texts)).stdout
        assert "per-token states of width 64" in out
    common = ["--params", str(params_file), "--features", str(features)]
    run(demo, "fgvc", "train_qformer", *common, "--out", str(tmp_path / "qformer"),
        "--live", str(tmp_path / "live"))
    saved = json.loads((tmp_path / "qformer" / "qformer.json").read_text())
    assert saved["text_input"] == "tokens" and saved["config"]["text_width"] == 64
    assert saved["final"]["mean_matched_cosine"] > saved["untrained"]["mean_matched_cosine"] + 0.3
    run(demo, "fgvc", "train_adapter", *common, "--qformer", str(tmp_path / "qformer"),
        "--out", str(tmp_path / "adapters"))
    run(demo, "fgvc", "evaluate", "--features", str(features), "--adapters",
        str(tmp_path / "adapters"), "--out", str(tmp_path / "evaluation"))
    results = pd.read_parquet(tmp_path / "evaluation" / "results.parquet").set_index(
        ["selection", "image_ratio", "text_source", "text_mapping"])
    assert results.loc[("class_balanced", 0, "reed", "qformer"), "top1"] > 2 * CHANCE
    assert results.loc[("class_balanced", 0, "llm", "qformer"), "top1"] > 2 * CHANCE


def test_zeroshot_baselines_score_every_backbone_above_chance(demo):
    results = pd.concat(pd.read_parquet(demo / "artifacts" / "zeroshot" / b / "results.parquet")
                        for b in ("demo-tiny", "demo-micro"))
    assert set(results["method"]) == {"clip", "cbd", "linear_probe"}
    assert (results["top1"] > 1.5 * CHANCE).all(), results[["backbone", "variant", "top1"]]
    tiny = results[results["backbone"] == "demo-tiny"].set_index("variant")
    # the paper's template scores what evaluate's zero-shot row does: same features, same text
    metrics = json.loads((demo / "artifacts" / "evaluate" / "metrics.json").read_text())
    assert tiny.loc["paper", "top1"] == pytest.approx(metrics["zero_shot_clip"]["top1"])
    # descriptions beat the class name on the demo (its species are named at random); the
    # linear probe on every train image is the upper reference
    assert tiny.loc["attributes", "top1"] > tiny.loc["paper", "top1"] + 20
    assert tiny.loc["logistic regression", "top1"] > tiny.loc["attributes", "top1"]
    explanations = pd.read_parquet(demo / "artifacts" / "zeroshot" / "demo-tiny" /
                                   "explanations.parquet")
    assert set(explanations["descriptions"]) == {"attributes", "descriptors"}
    table = pd.read_csv(demo / "artifacts" / "report" / "zeroshot.csv")
    assert len(table) == len(results)


def test_new_prompts_encode_only_texts_and_a_new_backbone_runs_only_itself(demo):
    """Last: it leaves the workspace changed. A new template set reruns only the zeroshot
    stages and the report, and they encode only its texts (the images are kept). Adding a
    backbone would run only that backbone's stages and the report."""
    params_file = demo / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["zeroshot"]["templates"].append("open_clip:OPENAI_IMAGENET_TEMPLATES")
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    rerun = run(demo, sys.executable, "-m", "dvc", "repro")
    assert ran_stages(rerun.stdout) == {"zeroshot@demo-tiny", "zeroshot@demo-micro", "report"}
    for backbone in ("demo-tiny", "demo-micro"):  # the images and known texts are reused
        assert re.search(f"zeroshot@{backbone}: features .*: cub_images 0 shard\\(s\\) encoded, "
                         r"\d+ reused, templates-paper 0 shard\(s\) encoded", rerun.stdout)
        assert re.search(f"zeroshot@{backbone}: features .*templates-open_clip-OPENAI_IMAGENET_"
                         r"TEMPLATES [1-9]\d* shard\(s\) encoded, 0 reused", rerun.stdout)
    ensemble = pd.read_parquet(demo / "artifacts" / "zeroshot" / "demo-tiny" / "results.parquet")
    assert (ensemble["variant"] == "open_clip:OPENAI_IMAGENET_TEMPLATES").sum() == 1
    params["clip"]["backbones"]["demo-tiny-2"] = {"model": "fgvc-demo-tiny", "pretrained": None}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(demo, sys.executable, "-m", "dvc", "status", "--json").stdout)
    assert set(status) == {"clip@demo-tiny-2", "zeroshot@demo-tiny-2", "report"}
