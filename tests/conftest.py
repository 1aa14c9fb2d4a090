import os
import shutil
import subprocess
import sys
from pathlib import Path

import json

import numpy as np
import pandas as pd
import pytest

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real CUB metadata and CBD descriptors beside the repo (present in CI, not on clones)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real metadata folder {SHARED_DATA} is absent (only CI and developers have it)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A resolved demo-tiny CLIP (random weights, seed 0) in a folder, as the `clip` stage
    writes one."""
    import torch

    from pipeline.clip.loading import create_clip, save_clip

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip")
    save_clip(create_clip("fgvc-demo-tiny", None), folder)
    return folder


def extract_settings(*, batch_size: int | None = None, num_workers: int = 0,
                     shard_rows: int | None = None, precision: str | None = None,
                     amp: str | None = None, device: str | None = None, **images):
    """`extract` settings for a test: one batch size for images and texts, decoding in this
    process unless `num_workers` says otherwise, the rest the defaults."""
    from pipeline.features.settings import ExtractSettings

    batch = {"batch_size": batch_size} if batch_size else {}
    top = {k: v for k, v in dict(shard_rows=shard_rows, precision=precision, amp=amp,
                                 device=device).items() if v is not None}
    return ExtractSettings(images=dict(images, num_workers=num_workers, **batch), texts=batch,
                           **top)


def copy_repo(dest: Path, skip: tuple[str, ...] = ()) -> Path:
    """The project as git sees it (tracked and untracked, not ignored files; none under a `skip`
    prefix) copied into `dest`, without dvc.lock: a fresh machine's checkout."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file() and not rel.startswith(skip):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    (dest / "dvc.lock").unlink(missing_ok=True)
    return dest


def dvc(cwd: Path, *args: str) -> str:
    """`dvc <args>` in `cwd` with this venv's dvc, offline; its stdout (a failure shows both
    streams)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def jpeg(path: Path) -> None:
    """A tiny valid JPEG at `path` (a dataset layout's image)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), "gray").save(path)


def lines(path: Path, *rows: str) -> None:
    """A list file of `rows`, one a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{row}\n" for row in rows))


def run_by_hand(project: Path, *args: str) -> str:
    """`fgvc <args>` in `project`, in this process (the stages' startup, minus the subprocess);
    its output."""
    import torch
    from typer.testing import CliRunner

    from stages.cli import app

    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(project)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:  # a stage may set torch's threads (train_adapter.cpu_threads): not for later tests
        os.chdir(cwd)
        torch.set_num_threads(threads)
    assert result.exit_code == 0, f"fgvc {' '.join(args)}:\n{result.output}"
    return result.output


def run_stages_by_hand(project: Path, *names: str) -> str:
    """The commands `dvc repro` runs for the stages `names` (every stage where none is named),
    read from DVC's index of `project`, run in dvc.yaml's order (each after the stages it reads)
    by `run_by_hand`, in this process: no torch start-up for each stage. DVC's lock is left as it
    was: `dvc status` then tells what they changed, `dvc commit` records them. Their output."""
    import shlex

    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        stages = [(stage.name, stage.cmd) for stage in repo.index.stages]
    missing = set(names) - {name for name, _ in stages}
    assert not missing, f"no such stages in {project / 'dvc.yaml'}: {sorted(missing)}"
    said = ""
    for name, command in stages:
        if names and name not in names:
            continue
        program, *args = shlex.split(command)
        assert program == "fgvc", (name, command)
        said += run_by_hand(project, *args)
    return said


BACKBONE = "demo-tiny"
CARD = {"library": "open_clip", "model_name": "fgvc-demo-tiny", "pretrained": None,
        "weights_sha256": "f" * 64, "embed_dim": 8, "preprocess": {"size": [64, 64]}}
FINGERPRINT = {key: CARD[key] for key in ("model_name", "pretrained", "weights_sha256",
                                           "embed_dim", "preprocess")}
CLASSES = ["Alpha Finch", "Beta Warbler", "Gamma Tern"]


@pytest.fixture
def features(tmp_path):
    """One backbone's feature sets, made by hand: 3 well separated classes of 10 train and 10
    test images each, a template set, a description set and a misleading one (each class's
    text at the next class's centre), no captions; the index tables and the CLIP's card that go
    with them."""
    from pipeline.common import write_parquet
    from pipeline.features import write_feature_set

    (tmp_path / "clip" / BACKBONE).mkdir(parents=True)
    (tmp_path / "clip" / BACKBONE / "card.json").write_text(json.dumps(CARD))
    rng = np.random.default_rng(0)
    centres = 3 * rng.normal(size=(3, 8))
    images = pd.DataFrame({"image_id": np.arange(1, 61), "class_id": np.repeat([1, 2, 3], 20),
                           "split": np.tile(["train"] * 10 + ["test"] * 10, 3)})
    extract = tmp_path / "extract" / BACKBONE

    def write(folder, ids, embeddings):
        write_feature_set(extract / folder, ids, embeddings.astype(np.float32), name=folder,
                          fingerprint=FINGERPRINT, shard_rows=64, precision="float32")

    write("target_images", images, centres[images["class_id"] - 1] + rng.normal(size=(60, 8)))
    write("templates/paper", pd.DataFrame({"class_id": [1, 2, 3], "template_index": 0,
                                           "template": "a photo of a {}.",
                                           "text": [f"a photo of a {c}." for c in CLASSES]}),
          centres)
    write("descriptions/attributes", pd.DataFrame(
        {"class_id": [1, 2, 3], "sample_index": 0, "prompt_id": "x",
         "text": [f"{c}, which is a bird" for c in CLASSES]}), centres)
    write("descriptions/attributes_weak", pd.DataFrame(
        {"class_id": [1, 2, 3], "sample_index": 0, "prompt_id": "x",
         "text": [f"{c}, which is a fish" for c in CLASSES]}), centres[[1, 2, 0]])
    write("target_captions", pd.DataFrame({"image_id": np.zeros(0, np.int64),
                                           "caption_index": np.zeros(0, np.int32),
                                           "text": np.zeros(0, str)}), np.zeros((0, 8)))
    index = tmp_path / "index"
    write_parquet(index / "target_images.parquet", images.assign(
        path=[f"images/{i}.jpg" for i in images["image_id"]],
        class_name=[CLASSES[c - 1] for c in images["class_id"]]), {"fgvc.root": str(tmp_path)})
    write_parquet(index / "target_classes.parquet", pd.DataFrame(
        {"class_id": [1, 2, 3], "class_dir": CLASSES, "class_name": CLASSES}))
    return tmp_path


def write_qformer(folder: Path) -> Path:
    """A small random Q-Former (seed 0) for the `features` fixture's CLIP, saved in `folder`."""
    import torch

    from pipeline.qformer import QFormerConfig, TextToImageQFormer, save_qformer

    torch.manual_seed(0)
    save_qformer(TextToImageQFormer(QFormerConfig(text_width=8, image_width=8, num_queries=2,
                                                  hidden_size=16, num_layers=1, num_heads=2,
                                                  intermediate_size=32)), folder,
                 {"clip_fingerprint": FINGERPRINT, "text_input": "pooled"})
    return folder
