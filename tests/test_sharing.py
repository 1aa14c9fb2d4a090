"""Sharing outputs with a team through real DVC remotes (README, "Working the DVC way").

Machine A is a temp copy of the repo, shrunk (`shrink_params`) so its whole `dvc repro` takes
a minute or two on 2 CPU cores; machine B is a `git clone` of it, with its own empty DVC cache.
Git travels through a bare repo both use as `origin`; DVC outputs through two kinds of remote:
a local folder, and S3 served on 127.0.0.1 by moto (the `remote` extra: dvc-s3, moto[server]).

A's history is made once, in the module fixture:
  tag `features`: the first `dvc repro`, dvc.lock committed;
  an experiment on it: `dvc exp run -n more-steps -S train_adapter.steps=30`;
  tag `two-backbones`: a second backbone (`demo-tiny`) added, reproduced and committed.
Then, for each kind of remote, A pushes (outputs, the experiment) and a fresh B pulls:
  - B's `dvc repro` runs no stage (nothing is encoded again), its outputs are A's bytes;
  - B pulls A's experiment and applies it: A's params, lock and metrics;
  - both backbones' CLIPs and zero-shot features live in one remote, and B pulls both.

Run with `python -m pytest -m remote` (the default run leaves these out: several minutes).
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo

pytestmark = pytest.mark.remote


# --- The shrunk demo: what A reproduces. ----------------------------------------------------

def _shrink_demo_world(data_section: dict) -> None:
    """Every demo world (`data.demo.<name>`, one demo@<name> stage each) small; the validator's
    minimums are coco_images >= 100 and num_classes >= 2."""
    for world in data_section.get("demo", {}).values():
        world.update(num_classes=5, train_per_class=8, test_per_class=8, coco_images=200)


def shrink_params(params: dict) -> dict:
    """params.yaml made small enough for a whole `dvc repro` in about a minute and a half on 2
    CPU cores: one small backbone trained one epoch, one epoch of Q-Former, 20 adapter steps,
    one template set, two adapter methods, and a world of 5 classes. Only keys that exist in params.yaml today."""
    clip = params["clip"]
    clip["backbones"] = {"demo-micro": clip["backbones"]["demo-micro"]}
    clip["adapter_backbones"] = ["demo-micro"]
    clip["demo_train"]["epochs"] = 1
    params["train_qformer"]["epochs"] = 1
    methods = params["train_adapter"]["methods"]
    # the paper's adapter and one few-shot method: each is its own stage, shared the same way
    params["train_adapter"]["methods"] = {"linear": {**methods["linear"], "steps": 20},
                                          "ensemble": methods["ensemble"]}
    params["zeroshot"]["templates"] = ["paper"]
    _shrink_demo_world(params["data"])
    return params


# The second backbone A adds (a key of the shipped params.yaml): another model than demo-micro
# (width 64, not 32), so its weights and features really differ; ~40 s in the shrunk world.
SECOND_BACKBONE = "demo-tiny"
STEPS = "train_adapter.methods.linear.steps"
METRICS = "artifacts/evaluate/cub/demo-micro/metrics.json"
EXPERIMENT = "more-steps"
BUCKET = "fgvc-team"


# --- Commands. ------------------------------------------------------------------------------

def _env(repo: Path, isolated: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # The repo's own code: the editable install points at the checkout these tests live
        # in, which may be mid-edit; each machine runs the code its dvc.lock records.
        PYTHONPATH=str(repo),
        DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1",
        # No global/system DVC config of the developer's (a global cache.dir, a default remote)
        DVC_GLOBAL_CONFIG_DIR=str(isolated / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(isolated / "dvc-system"),
        # moto's fake S3: dummy credentials, no ~/.aws, no proxy for 127.0.0.1
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(isolated / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(isolated / "aws-credentials"),
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        # commits, and the ones `dvc exp run` makes, on a machine without a git identity
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
    )


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=repo, env=_env(repo, repo.parent), capture_output=True,
                            text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(repo, sys.executable, "-m", "dvc", *args)


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def stage_names(repo: Path) -> set[str]:
    return set(dvc(repo, "stage", "list", "--name-only").stdout.split())


def lock_hashes(repo: Path) -> dict[tuple[str, str], str]:
    """(stage, output path) -> the hash dvc.lock records for it."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {(stage, out["path"]): out["md5"] for stage, entry in lock.items()
            for out in entry.get("outs", [])}


def cache_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def tracked_files(folder: Path) -> list[Path]:
    """The files DVC tracks in an output folder: not the feature store's resume logs, which
    .dvcignore leaves out (machine-local facts; a pulled folder has none)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and not p.name.endswith(".resume.jsonl"))


def same_tree(a: Path, b: Path) -> None:
    """Every file DVC tracks under a is under b with the same bytes, and nothing else is."""
    files_a, files_b = tracked_files(a), tracked_files(b)
    assert files_a and files_a == files_b, (a, files_a, files_b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(p) for p in files_a], shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


# --- The S3 server. -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_endpoint():
    """http://127.0.0.1:<port> of a moto S3 server holding an empty bucket, or None where the
    `remote` extra is not installed (then only the S3 tests skip)."""
    try:
        import boto3
        import dvc_s3  # noqa: F401 (dvc's s3:// support)
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        yield None, f"the S3 remote needs the `remote` extra (pip install -e '.[remote]'): {error}"
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing"
                     ).create_bucket(Bucket=BUCKET)
        yield endpoint, None
    finally:
        server.stop()


# --- Machine A. -----------------------------------------------------------------------------

@dataclass
class MachineA:
    root: Path            # the temp folder holding A, the bare origin, the local remote, Bs
    repo: Path
    origin: Path          # the bare git repo both machines push to and pull from
    remotes: dict[str, str]  # DVC remote name -> the url it was added with
    repro_seconds: float
    experiment_metrics: bytes  # artifacts/evaluate/metrics.json of the experiment
    experiment_lock: dict[tuple[str, str], str]  # dvc.lock of the experiment


def configure_machine(repo: Path, name: str) -> Path:
    """This machine's own DVC cache and site cache (config.local, not committed): an empty
    folder beside the repo, nothing shared with the other machine or with /var/tmp/dvc."""
    cache = repo.parent / f"cache-{name}"
    dvc(repo, "config", "--local", "cache.dir", str(cache))
    dvc(repo, "config", "--local", "core.site_cache_dir", str(repo.parent / f"site-cache-{name}"))
    return cache


@pytest.fixture(scope="module")
def machine_a(tmp_path_factory, s3_endpoint) -> MachineA:
    root = tmp_path_factory.mktemp("sharing")
    repo = root / "A"
    copy_repo(repo)
    params_file = repo / "params.yaml"
    params_file.write_text(yaml.safe_dump(shrink_params(yaml.safe_load(params_file.read_text())),
                                          sort_keys=False))
    run(repo, "git", "init", "-q", "-b", "main")
    configure_machine(repo, "A")
    # The remotes, committed (B gets them with the clone): a shared folder, and S3.
    remotes = {"folder": str(root / "remote-folder")}
    dvc(repo, "remote", "add", "folder", remotes["folder"])
    endpoint = s3_endpoint[0]
    if endpoint is not None:  # else the S3 tests skip
        remotes["s3"] = f"s3://{BUCKET}/dvc"
        dvc(repo, "remote", "add", "s3", remotes["s3"])
        dvc(repo, "remote", "modify", "s3", "endpointurl", endpoint)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "the shrunk demo, remotes")

    started = time.monotonic()
    first = dvc(repo, "repro")
    repro_seconds = time.monotonic() - started
    print(f"\nmachine A: the first `dvc repro` took {repro_seconds:.0f} s")  # -s shows it
    assert ran_stages(first.stdout) == stage_names(repo)
    run(repo, "git", "add", "dvc.lock")
    run(repo, "git", "commit", "-qm", "features")
    run(repo, "git", "tag", "features")

    # An experiment on `features`, then back to it (params, lock and outputs from the cache).
    features_lock = lock_hashes(repo)
    exp = dvc(repo, "exp", "run", "-n", EXPERIMENT, "-S", f"{STEPS}=30")
    assert ran_stages(exp.stdout) == {"train_adapter@cub-demo-micro-linear", "evaluate@cub-demo-micro",
                                      "report@cub", "suite"}  # not train_adapter@cub-demo-micro-ensemble
    experiment_metrics = (repo / METRICS).read_bytes()
    experiment_lock = lock_hashes(repo)
    adapters = ("train_adapter@cub-demo-micro-linear", "artifacts/train_adapter/cub/demo-micro/linear")
    assert experiment_lock[adapters] != features_lock[adapters]  # other adapters to share
    run(repo, "git", "checkout", "-q", "HEAD", "--", "params.yaml", "dvc.lock")
    dvc(repo, "checkout", "-q")
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}

    # A second backbone: only its stages and the report run.
    params = yaml.safe_load(params_file.read_text())
    params["clip"]["backbones"][SECOND_BACKBONE] = {"model": "fgvc-demo-tiny", "pretrained": None}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    second = dvc(repo, "repro")
    assert ran_stages(second.stdout) == {f"clip@{SECOND_BACKBONE}"} | {
        f"{stage}@cub-{SECOND_BACKBONE}" for stage in (
            "extract_target_images", "extract_templates", "extract_descriptions", "zeroshot")
    } | {"report@cub", "suite"}
    run(repo, "git", "add", "params.yaml", "dvc.lock")
    run(repo, "git", "commit", "-qm", "a second backbone")
    run(repo, "git", "tag", "two-backbones")

    origin = root / "origin.git"
    run(root, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    run(repo, "git", "remote", "add", "origin", str(origin))
    run(repo, "git", "push", "-q", "origin", "main", "--tags")
    return MachineA(root, repo, origin, remotes, repro_seconds, experiment_metrics,
                    experiment_lock)


# --- Machine B, one per kind of remote. -----------------------------------------------------

@dataclass
class Team:
    a: MachineA
    remote: str   # the DVC remote's name
    b: Path       # machine B's repo
    b_cache: Path


@pytest.fixture(scope="module", params=["folder", "s3"])
def team(request, s3_endpoint) -> Team:
    """A pushes every commit's outputs and its experiment to one remote; B clones the git
    origin, with its own empty cache."""
    remote = request.param
    if remote == "s3" and s3_endpoint[0] is None:
        pytest.skip(s3_endpoint[1])  # before machine A's minutes of setup
    machine_a = request.getfixturevalue("machine_a")
    a = machine_a.repo
    # Each machine's default remote (config.local): `dvc push -r <name> --all-commits` with no
    # default remote fails in DVC 3.67 ("no remote specified"), after pushing.
    dvc(a, "remote", "default", "--local", remote)
    dvc(a, "push", "-r", remote, "--all-commits")  # both tags' outputs
    dvc(a, "exp", "push", "-r", remote, "origin", EXPERIMENT)  # git refs + outputs
    b = machine_a.root / f"B-{remote}"
    run(machine_a.root, "git", "clone", "-q", str(machine_a.origin), str(b))
    b_cache = configure_machine(b, f"B-{remote}")
    dvc(b, "remote", "default", "--local", remote)
    assert not cache_files(b_cache)  # nothing in B's cache but what it pulls
    assert not (b / "artifacts").exists()
    return Team(machine_a, remote, b, b_cache)


def exp_rows(shown: list[dict]):
    """Every row of `dvc exp show --json`: baselines, and the experiments under them."""
    for row in shown:
        yield row
        for experiment in row.get("experiments") or []:
            yield from exp_rows(experiment.get("revs") or [])


def checkout(team: Team, tag: str) -> None:
    run(team.b, "git", "checkout", "-q", tag)
    dvc(team.b, "pull", "-r", team.remote)


def test_the_remote_holds_the_outputs(team, s3_endpoint):
    """`dvc push` really wrote to the remote: every output dvc.lock names, at both tags and in
    the experiment, is an object there (a folder's .dir listing included), and DVC agrees."""
    if team.remote == "folder":
        folder = Path(team.a.remotes["folder"])
        stored = {p.relative_to(folder).as_posix() for p in cache_files(folder)}
    else:
        import boto3
        s3 = boto3.client("s3", endpoint_url=s3_endpoint[0], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="dvc/")
        stored = {item["Key"].removeprefix("dvc/") for page in pages
                  for item in page.get("Contents", [])}
    wanted = set(team.a.experiment_lock.values())
    for tag in ("features", "two-backbones"):
        lock = yaml.safe_load(run(team.a.repo, "git", "show", f"{tag}:dvc.lock").stdout)
        wanted |= {out["md5"] for entry in lock["stages"].values() for out in entry.get("outs", [])}
    missing = {md5 for md5 in wanted if f"files/md5/{md5[:2]}/{md5[2:]}" not in stored}
    assert not missing, (missing, sorted(stored)[:10])
    cloud = dvc(team.a.repo, "status", "--cloud", "-r", team.remote, "--all-commits", "--json")
    assert json.loads(cloud.stdout) == {}


def test_b_pulls_and_reproduces_nothing(team):
    """B pulls the outputs dvc.lock names: everything is up to date, `dvc repro` runs no stage
    (no feature set is encoded again), and the outputs are A's, byte for byte."""
    checkout(team, "features")
    assert cache_files(team.b_cache)  # the pull filled B's own cache
    assert json.loads(dvc(team.b, "status", "--json").stdout) == {}
    repro = dvc(team.b, "repro")
    assert ran_stages(repro.stdout) == set(), repro.stdout
    for stage in stage_names(team.b):  # extract_*@*, zeroshot@*, ...: skipped, not rerun
        assert f"Stage '{stage}' didn't change, skipping" in repro.stdout, (stage, repro.stdout)
    a, b = team.a.repo / "artifacts", team.b / "artifacts"
    # A's workspace is at two-backbones: these outputs did not change since `features`
    for folder in ("clip/demo-micro", "extract/demo-micro", "train_qformer/demo-micro/checkpoint",
                   "train_adapter/demo-micro", "evaluate/demo-micro", "zeroshot/demo-micro"):
        same_tree(a / folder, b / folder)
    assert not (b / "clip" / SECOND_BACKBONE).exists()


def test_b_pulls_and_applies_a_s_experiment(team):
    """`dvc exp push` (git refs to origin, outputs to the remote) on A, `dvc exp pull` on B:
    B lists the experiment with A's metrics and applies it without running anything."""
    checkout(team, "features")
    before = json.loads(dvc(team.b, "exp", "show", "--json").stdout)
    assert EXPERIMENT not in {row.get("name") for row in exp_rows(before)}  # a clone has none
    dvc(team.b, "exp", "pull", "-r", team.remote, "origin", EXPERIMENT)
    shown = json.loads(dvc(team.b, "exp", "show", "--json").stdout)
    experiments = {row["name"]: row for row in exp_rows(shown) if row.get("name")}
    assert EXPERIMENT in experiments, json.dumps(shown)[:3000]
    metrics = experiments[EXPERIMENT]["data"]["metrics"][METRICS]["data"]
    assert metrics == json.loads(team.a.experiment_metrics)
    try:
        dvc(team.b, "exp", "apply", EXPERIMENT)
        linear = yaml.safe_load((team.b / "params.yaml").read_text())["train_adapter"]["methods"]
        assert linear["linear"]["steps"] == 30
        assert lock_hashes(team.b) == team.a.experiment_lock
        assert (team.b / METRICS).read_bytes() == team.a.experiment_metrics
        assert json.loads(dvc(team.b, "status", "--json").stdout) == {}  # outputs match the lock
        assert ran_stages(dvc(team.b, "repro").stdout) == set()
    finally:
        run(team.b, "git", "checkout", "-q", "HEAD", "--", "params.yaml", "dvc.lock")
        dvc(team.b, "checkout", "-q")


def test_two_backbones_share_one_remote(team):
    """A added a backbone and pushed: both backbones' CLIPs, feature sets and zero-shot results
    are in the one remote, and B, pulling the new commit, has both and nothing to rerun."""
    checkout(team, "two-backbones")
    a, b = team.a.repo / "artifacts", team.b / "artifacts"
    for name in ("demo-micro", SECOND_BACKBONE):
        for folder in (f"clip/{name}", f"extract/{name}/target_images", f"zeroshot/{name}"):
            same_tree(a / folder, b / folder)
    # two different CLIPs, two different feature sets, side by side in the remote
    hashes = lock_hashes(team.b)
    for stage, path in (("clip@{}", "artifacts/clip/{}"),
                        ("extract_target_images@{}", "artifacts/extract/{}/target_images")):
        assert hashes[stage.format("demo-micro"), path.format("demo-micro")] != \
            hashes[stage.format(SECOND_BACKBONE), path.format(SECOND_BACKBONE)]
    assert json.loads(dvc(team.b, "status", "--json").stdout) == {}
    assert ran_stages(dvc(team.b, "repro").stdout) == set()
    cloud = dvc(team.b, "status", "--cloud", "-r", team.remote, "--json")
    assert json.loads(cloud.stdout) == {}
