import os
import shutil
import subprocess
from pathlib import Path

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


def run_by_hand(project: Path, *args: str) -> str:
    """`fgvc <args>` in `project`, in this process (the stages' startup, minus the subprocess);
    its output."""
    from typer.testing import CliRunner

    from stages.cli import app

    cwd = os.getcwd()
    os.chdir(project)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, f"fgvc {' '.join(args)}:\n{result.output}"
    return result.output
