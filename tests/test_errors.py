"""What a user can get wrong ends in one `error:` line on stderr and an exit code, never a
traceback, and the stages run by hand in dvc.yaml's order without naming a path.

Every command whose errors are checked runs as a real subprocess in a project folder of its own
(a copy of dvc.yaml and params.yaml), as `dvc repro` and a user's shell run it: a traceback would
show on its stderr. What only sets a project up runs in this process, which is faster.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml


from conftest import REPO, run_by_hand

FGVC = str(Path(sys.executable).parent / "fgvc")
ENV = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")

# Every command, as dvc.yaml runs it but with no path given: each falls back to dvc.yaml's.
COMMANDS = {
    "demo": ["demo", "world"], "data": ["data"], "clip": ["clip"], "describe": ["describe"],
    "extract": ["extract", "target_images"], "train_qformer": ["train_qformer"],
    "train_adapter": ["train_adapter"], "evaluate": ["evaluate"], "zeroshot": ["zeroshot"],
    "report": ["report"], "bench extract": ["bench", "extract"],
    "bench adapter": ["bench", "adapter"],
}
# In an empty project: the first input each command misses, and the stage that makes it.
MISSING = {
    "data": ("artifacts/data/world", "demo@world"),
    "clip": ("artifacts/data/index/coco_images.parquet", "data_coco"),
    "describe": ("artifacts/data/index/cub/target_classes.parquet", "data@cub"),
    "extract": ("artifacts/data/index/cub/target_images.parquet", "data@cub"),
    "train_qformer": ("artifacts/clip/demo-tiny", "clip@demo-tiny"),
    "train_adapter": ("artifacts/clip/demo-tiny", "clip@demo-tiny"),
    "evaluate": ("artifacts/clip/demo-tiny", "clip@demo-tiny"),
    "zeroshot": ("artifacts/clip/demo-tiny", "clip@demo-tiny"),
    "report": ("artifacts/evaluate/cub/demo-tiny/results.parquet", "evaluate@cub-demo-tiny"),
    "bench extract": ("artifacts/data/world", "demo@world"),
    "bench adapter": ("artifacts/clip/demo-tiny", "clip@demo-tiny"),
}
# The demo at its smallest: every stage runs in seconds.
TINY = {
    "data.demo.world": dict(num_classes=4, train_per_class=10, test_per_class=2, coco_images=100,
                      image_size=48),
    "clip.demo_train": dict(epochs=1, batch_size=32),
    "describe": dict(samples_per_class=3),
    "train_qformer": dict(epochs=1, batch_size=64),
    "train_adapter.methods.linear": dict(steps=10, batch_size=16),
    "train_adapter.budgets": dict(ratios=[50, 100], shots=[1, 4], seeds=[1]),
}


def fgvc(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([FGVC, *args], cwd=cwd, env=dict(ENV, **env), capture_output=True,
                          text=True)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The only line on stderr, checked to be an `error:` line with no traceback anywhere."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def edit_params(project: Path, edits: dict, name: str = "params.yaml") -> Path:
    """Write project/<name>: the project's params with `edits` ({"section.key": {k: v}})."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for where, values in edits.items():
        section = params
        for key in where.split("."):
            section = section[key]
        section.update(values)
    (project / name).write_text(yaml.safe_dump(params, sort_keys=False))
    return project / name


def new_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, folder / name)
    shutil.copytree(REPO / "prompts", folder / "prompts")
    return folder


@pytest.fixture
def project(tmp_path) -> Path:
    return new_project(tmp_path / "project")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_invalid_params_stop_every_command_in_one_line(project, command):
    edit_params(project, {"report": {"plot_selection": "sideways"}})
    result = fgvc(project, *COMMANDS[command])
    assert result.returncode == 2
    assert one_error_line(result) == ("error: params.yaml: report.plot_selection: must be "
                                      "'class_balanced' or 'global' (got 'sideways')")


@pytest.mark.parametrize("command", list(MISSING))
def test_a_missing_input_names_the_stage_that_makes_it(project, command):
    result = fgvc(project, *COMMANDS[command])
    path, maker = MISSING[command]
    assert result.returncode == 1
    assert one_error_line(result) == (f"error: {path} does not exist: the `{maker}` stage makes "
                                      f"it (dvc repro {maker})")


def test_default_paths_come_from_dvc_yaml(project):
    dvc_yaml = yaml.safe_load((project / "dvc.yaml").read_text())
    dvc_yaml["vars"][0]["paths"]["clip"] = "build/clip"
    (project / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    for command in ("train_qformer", "evaluate", "zeroshot"):
        assert one_error_line(fgvc(project, command)) == (
            "error: build/clip/demo-tiny does not exist: the `clip@demo-tiny` stage makes it "
            "(dvc repro clip@demo-tiny)")
    assert "[default: (build/clip)]" in fgvc(project, "clip", "--help").stdout


def test_a_missing_path_given_by_hand_is_not_blamed_on_a_stage(project):
    line = one_error_line(fgvc(project, "train_qformer", "--clip", "my/clip"))
    assert line == ("error: my/clip does not exist (given on the command line: it should hold "
                    "what the `clip` stage makes)")


def test_a_params_file_that_is_not_yaml_is_one_line(project):
    (project / "params.yaml").write_text("data:\n  source: demo\n    seed: [1\n")
    result = fgvc(project, "data")
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: params.yaml: not valid YAML at line 3")


def test_ctrl_c_in_a_real_run_is_one_line_and_code_130(project):
    """SIGINT (Ctrl-C) to a real `fgvc demo world` drawing a large world: one line on stderr
    saying it was interrupted and what a rerun keeps (the progress bar may redraw after it);
    exit code 130."""
    import signal
    import time

    edit_params(project, {"data.demo.world": dict(coco_images=200_000)})
    # SIGINT as a terminal delivers it: a job run in the background (nohup, a CI runner) has it
    # ignored, and the child would inherit that and never see Ctrl-C
    process = subprocess.Popen([FGVC, "demo", "world"], cwd=project, env=ENV, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not list((project / "artifacts").rglob("*.jpg")):  # drawing has begun
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(said) == 1 and said[0].startswith("interrupted (outputs are renamed into place"), err


def test_without_a_dvc_yaml_the_default_paths_are_one_line(tmp_path):
    result = fgvc(tmp_path, "report")
    assert result.returncode == 1
    assert one_error_line(result) == (f"error: no dvc.yaml in {tmp_path}: run fgvc in the "
                                      "project's root folder, or give every path on the command "
                                      "line")


def test_pretrained_weights_without_a_network_say_where_they_come_from(project, tmp_path):
    edit_params(project, {"clip.backbones": {"b32": {"model": "ViT-B-32", "pretrained": "openai"}}})
    result = fgvc(project, "clip", "b32", HF_HOME=str(tmp_path / "empty_hub_cache"))  # no copy
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith("error: clip.backbones.b32: could not fetch the 'openai' "
                           "weights of ViT-B-32 from the Hugging Face hub "
                           "(timm/vit_base_patch32_clip_224.openai)")
    assert "HF_HUB_OFFLINE=1" in line and "pretrained (clip.backbones) to a checkpoint file" in line


def test_an_unknown_model_or_tag_is_one_line(project):
    edit_params(project, {"clip.backbones": {"demo-tiny": {"model": "ViT-Q-99",
                                                           "pretrained": "openai"}}})
    result = fgvc(project, "clip")
    assert result.returncode == 1
    assert "open_clip has no model 'ViT-Q-99'" in one_error_line(result)
    edit_params(project, {"clip.backbones": {"demo-tiny": {"model": "ViT-B-32",
                                                           "pretrained": "laion9b"}}})
    result = fgvc(project, "clip")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "ViT-B-32 has no pretrained tag 'laion9b'" in line and "openai" in line  # the tags


def test_a_wrong_dataset_folder_names_the_params_key(project, tmp_path):
    (tmp_path / "downloads" / "CUB_200_2011").mkdir(parents=True)
    edit_params(project, {"data": {"demo": {}, "root": str(tmp_path / "downloads")}})
    result = fgvc(project, "data")
    assert result.returncode == 1
    assert one_error_line(result) == (
        f"error: data.target.path: missing file "
        f"{tmp_path / 'downloads' / 'CUB_200_2011' / 'images.txt'}")


@pytest.fixture(scope="module")
def by_hand(tmp_path_factory) -> Path:
    """A tiny demo project where every stage ran by hand, in dvc.yaml's order, with no path on
    the command line (until 2026-11 `train_adapter` looked for the Q-Former where
    `train_qformer` did not write it)."""
    project = new_project(tmp_path_factory.mktemp("by_hand") / "project")
    edit_params(project, TINY)
    params = yaml.safe_load((project / "params.yaml").read_text())
    main, *others = params["clip"]["backbones"]  # the first is the adapter chain's, the default
    scored = ["target_images", "templates", "descriptions"]
    describe = [["describe", s] for s in [*params["describe"]["sets"],
                                          *params["describe"]["controls"]]
                if s != params["train_adapter"]["descriptions"]]  # controls after their sets
    for command in (["demo", "world"], ["data"], ["clip"], *(["clip", b] for b in others),
                    ["describe"], *describe,
                    *(["extract", s] for s in scored + ["coco_images", "coco_captions",
                                                        "target_captions"]),
                    *(["extract", s, b] for b in others for s in scored),
                    ["train_qformer"], ["train_adapter"], ["evaluate"], ["zeroshot"],
                    *(["zeroshot", b] for b in others), ["report"]):
        run_by_hand(project, *command)
    return project


def test_stages_run_by_hand_in_dvc_yaml_order(by_hand):
    paths = yaml.safe_load((by_hand / "dvc.yaml").read_text())["vars"][0]["paths"]
    assert (by_hand / paths["train_qformer"] / "demo-tiny" / "checkpoint" / "qformer.json").is_file()
    assert (by_hand / paths["train_adapter"] / "cub" / "demo-tiny" / "linear" / "heads.json").is_file()
    params = yaml.safe_load((by_hand / "params.yaml").read_text())
    table = pd.read_csv(by_hand / paths["report"] / "cub" / "table1.csv")
    adapters = params["train_adapter"]
    mappings = adapters["methods"]["linear"]["text_mapping"]
    assert len(table) == (10 + 20 * len(mappings)) * len(adapters["selection"])
    baselines = pd.read_csv(by_hand / paths["report"] / "cub" / "zeroshot.csv")
    assert set(baselines["backbone"]) == set(params["clip"]["backbones"])


def test_extracting_into_a_folder_of_other_files_is_refused(by_hand):
    before = {p: p.read_bytes() for p in (by_hand / "artifacts" / "report" / "cub").rglob("*") if p.is_file()}
    result = fgvc(by_hand, "extract", "target_images", "--out", "artifacts/report/cub")
    assert result.returncode == 1
    names = sorted(p.name for p in (by_hand / "artifacts" / "report" / "cub").iterdir())
    assert len(names) > 5  # the first five named, the others counted
    assert one_error_line(result).startswith(
        f"error: artifacts/report/cub holds files that are not part of a feature set "
        f"({', '.join(names[:5])} and {len(names) - 5} more): refusing to write features there")
    assert {p: p.read_bytes() for p in before} == before  # nothing deleted or rewritten


def test_artifacts_of_another_clip_are_refused_wherever_they_meet(by_hand):
    """A second real CLIP (another seed, so other weights), with its own features: each stage
    that joins artifacts of the two refuses in one line that names both models."""
    other = edit_params(by_hand, {"clip.demo_train": {"seed": 1}}, name="other.yaml")
    run_by_hand(by_hand, "clip", "--params", str(other), "--out", "other")
    for name in ("target_images", "target_captions", "descriptions"):
        run_by_hand(by_hand, "extract", name, "--clip", "other/demo-tiny", "--out",
                    f"other/extract/{name}")
    ours, theirs = (yaml.safe_load((by_hand / clip / "card.json").read_text())["weights_sha256"][:12]
                    for clip in ("artifacts/clip/demo-tiny", "other/demo-tiny"))
    assert ours != theirs

    def refused(*args: str) -> str:
        result = fgvc(by_hand, *args)
        assert result.returncode == 1
        return one_error_line(result)

    # this CLIP's features, the other CLIP in use
    line = refused("train_qformer", "--clip", "other/demo-tiny", "--out", "x", "--live", "y")
    assert line == (f"error: the feature set artifacts/extract/coco/demo-tiny/coco_images: made with CLIP "
                    f"fgvc-demo-tiny (trained here, weights {ours}), but the CLIP in use is "
                    f"fgvc-demo-tiny (trained here, weights {theirs}) (differs in: "
                    "weights_sha256); extract it again with this CLIP (the `extract` stage)")
    # the other CLIP's features, but this CLIP's Q-Former
    line = refused("train_adapter", "--clip", "other/demo-tiny", "--features", "other/extract",
                   "--out", "x")
    assert line.startswith(f"error: the Q-Former in artifacts/train_qformer/demo-tiny/checkpoint: made "
                           f"with CLIP fgvc-demo-tiny (trained here, weights {ours}), but the "
                           f"CLIP in use is fgvc-demo-tiny (trained here, weights {theirs})")
    # the other CLIP's features, but this CLIP's adapters
    line = refused("evaluate", "--clip", "other/demo-tiny", "--features", "other/extract", "--out", "x")
    assert line.startswith(f"error: the linear adapters in artifacts/train_adapter/cub/demo-tiny/linear: made with CLIP "
                           f"fgvc-demo-tiny (trained here, weights {ours}), but the CLIP in use "
                           f"is fgvc-demo-tiny (trained here, weights {theirs})")
    # this CLIP's features scored zero-shot with the other CLIP's text side
    line = refused("zeroshot", "--clip", "other/demo-tiny", "--out", "x")
    assert line.startswith(f"error: the feature set artifacts/extract/cub/demo-tiny/target_images: made "
                           f"with CLIP fgvc-demo-tiny (trained here, weights {ours}), but the "
                           f"CLIP in use is fgvc-demo-tiny (trained here, weights {theirs})")
    assert not (by_hand / "x").exists()  # nothing written by a refused stage


def test_a_damaged_feature_set_stops_a_stage_that_reads_it_in_one_line(by_hand):
    """Issue 23: a byte flipped in a finished shard, then a manifest cut short: the stage
    reading the set (zeroshot: target_images first) stops in one line naming the file, the set
    and how to rebuild it, and writes nothing. The files are put back."""
    folder = "artifacts/extract/cub/demo-tiny/target_images"
    shard, manifest = by_hand / folder / "shard-00000.parquet", by_hand / folder / "manifest.json"
    before = {path: path.read_bytes() for path in (shard, manifest)}
    rebuild = "re-run `extract` for it (or `dvc checkout` it from the cache)"
    try:
        data = bytearray(before[shard])
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
        result = fgvc(by_hand, "zeroshot", "--out", "x")
        assert result.returncode == 1
        assert one_error_line(result) == (
            f"error: {folder}/shard-00000.parquet is damaged (its bytes do not have the checksum "
            f"the manifest of the feature set {folder} recorded): {rebuild}")
        shard.write_bytes(before[shard])
        manifest.write_bytes(before[manifest][:40])
        result = fgvc(by_hand, "zeroshot", "--out", "x")
        assert result.returncode == 1
        line = one_error_line(result)
        assert line.startswith(f"error: {folder}/manifest.json is damaged (not JSON: ")
        assert line.endswith(rebuild)
    finally:
        for path, content in before.items():
            path.write_bytes(content)
    assert not (by_hand / "x").exists()


@pytest.fixture
def full_disk(tmp_path):
    """A real 4 KB filesystem (a tmpfs this test mounts): every write past it fails, ENOSPC."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.strip()[:80]}): needs root")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_stops_extraction_in_one_line_and_leaves_nothing_half_written(by_hand,
                                                                                 full_disk):
    result = fgvc(by_hand, "extract", "target_images", "--out", str(full_disk / "features"))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot write"), result.stderr
    assert "No space left on device (free space" in errors[0]
    assert "what was finished is kept" in errors[0]
    final = [p.name for p in full_disk.rglob("*") if p.is_file()
             and (p.name.startswith("shard-") and p.suffix == ".parquet"
                  or p.name == "manifest.json")]
    assert final == []  # no shard or manifest under its final name, whole or not
