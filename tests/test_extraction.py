"""Image extraction for real: resumes after SIGKILL to the same bytes, skips and lists bad images,
fails on too many, and the Ray engine writes what the local one writes."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, extract_settings
from PIL import Image
from typer.testing import CliRunner

from pipeline.clip.loading import load_clip
from pipeline.common import write_parquet
from pipeline.features.images import extract_image_features
from pipeline.features.store import read_feature_set, read_manifest
from stages.cli import app

BAD_FILES = {  # name -> (bytes or None for "do not create", expected reason)
    "missing.jpg": (None, "missing file"),
    "empty.jpg": (b"", "empty file"),
    "page.jpg": (b"<html>404</html>", "not an image"),
    "cut.jpg": ("truncate", "truncated"),
}


def draw(path, seed, mode="RGB"):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (48 + seed % 17, 64, 3), dtype=np.uint8), "RGB")
    image.convert(mode).save(path, quality=90)


def make_world(root, good: int, bad: bool):
    """`good` decodable images (some CMYK and grayscale) and, if `bad`, one file of each bad kind,
    with an index table as the `data` stage writes it."""
    (root / "images").mkdir(parents=True)
    paths = []
    for i in range(good):
        mode = {0: "RGB", 1: "RGB", 2: "CMYK", 3: "L"}[i % 4]
        draw(root / "images" / f"{i:04d}.jpg", i, mode)
        paths.append(f"images/{i:04d}.jpg")
    if bad:
        for name, (content, _) in BAD_FILES.items():
            if content == "truncate":
                data = (root / paths[0]).read_bytes()
                (root / "images" / name).write_bytes(data[: len(data) // 2])
            elif content is not None:
                (root / "images" / name).write_bytes(content)
            paths.insert(len(paths) // 2, f"images/{name}")  # in the middle, not at the end
    index = pd.DataFrame({"image_id": np.arange(1, len(paths) + 1), "path": paths,
                          "class_id": np.arange(len(paths)) % 3 + 1, "split": "train"})
    write_parquet(root / "index" / "target_images.parquet", index, {"fgvc.root": str(root)})
    return index


def params_file(folder, **images):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["extract"].update(shard_rows=8, device="cpu")
    params["extract"]["images"].update(batch_size=4, num_workers=0, **images)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


def extract_command(world, clip_dir, out, params):
    return ["extract", "target_images", "--index", str(world / "index"), "--clip", str(clip_dir),
            "--out", str(out), "--params", str(params)]


def test_bad_images_are_skipped_and_listed(tmp_path, clip_dir):
    index = make_world(tmp_path / "world", good=20, bad=True)
    params = params_file(tmp_path, max_bad_fraction=0.25)
    result = CliRunner().invoke(app, extract_command(tmp_path / "world", clip_dir, tmp_path / "fs",
                                                     params))
    assert result.exit_code == 0, result.output
    assert "20 target_images features" in result.output and "4 skipped" in result.output
    manifest = read_manifest(tmp_path / "fs")
    assert manifest["rows"] == 20 and manifest["input_rows"] == 24 and manifest["skipped"] == 4
    listed = {e["path"]: e for e in manifest["errors"]}
    for name, (_, reason) in BAD_FILES.items():
        error = listed[f"images/{name}"]
        assert reason in error["reason"]
        assert index.loc[error["row"], "path"] == f"images/{name}"
        assert error["image_id"] == index.loc[error["row"], "image_id"]  # ids to find it by
    features = read_feature_set(tmp_path / "fs", load_clip(clip_dir).fingerprint)
    good = index[~index["path"].isin(listed)]
    assert features.ids["image_id"].tolist() == good["image_id"].tolist()  # CMYK, gray kept
    assert np.isfinite(features.embeddings).all() and features.embeddings.std() > 0


def test_too_many_bad_images_fail_the_stage_and_keep_the_work(tmp_path, clip_dir):
    make_world(tmp_path / "world", good=20, bad=True)
    params = params_file(tmp_path, max_bad_fraction=0.1)
    result = CliRunner().invoke(app, extract_command(tmp_path / "world", clip_dir, tmp_path / "fs",
                                                     params))
    assert result.exit_code == 1
    assert "4 of 24 images (16.7%) could not be decoded" in result.output
    assert "1 x missing file" in result.output and "1 x truncated file" in result.output
    assert not (tmp_path / "fs" / "manifest.json").exists()  # never looks finished
    assert len(json.loads((tmp_path / "fs" / "errors.json").read_text())) == 4
    assert len(list((tmp_path / "fs").glob("shard-*.parquet"))) == 3  # 24 rows / 8 per shard


KILL_SEED = 20240611  # the default kill point's seed; FGVC_KILL_SEED overrides it
SHARDS = 25  # of 8 images each: enough for a kill point well inside the run


def test_killed_run_resumes_to_the_same_bytes(tmp_path, clip_dir):
    make_world(tmp_path / "world", good=8 * SHARDS, bad=False)
    params = params_file(tmp_path)
    # Only the killed run needs a process of its own: the others run in this one (no start-up)
    uninterrupted = CliRunner().invoke(app, extract_command(tmp_path / "world", clip_dir,
                                                            tmp_path / "whole", params))
    assert uninterrupted.exit_code == 0, uninterrupted.output

    out = tmp_path / "killed"
    # The kill point is drawn from a fixed seed; FGVC_KILL_SEED=<n> replays (or varies) it. The
    # shards actually left can exceed the drawn point (the run goes on while we poll).
    seed = int(os.environ.get("FGVC_KILL_SEED", KILL_SEED))
    kill_after = random.Random(seed).randint(3, 15)  # of 25 shards
    where = f"FGVC_KILL_SEED={seed}: kill after {kill_after} of {SHARDS} shards"
    print(where)
    fgvc = [sys.executable, "-c", "from stages.cli import main; main()"]
    process = subprocess.Popen(fgvc + extract_command(tmp_path / "world", clip_dir, out, params),
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(out.glob("shard-*.parquet"))) < kill_after and process.poll() is None:
        assert time.time() < deadline, f"{where}: the run hangs"
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists(), f"{where}: the run finished before the kill"
    left = len(list(out.glob("shard-*.parquet")))
    where += f", {left} left by the killed run"
    print(where)
    assert kill_after <= left < SHARDS, where

    resumed = CliRunner().invoke(app, extract_command(tmp_path / "world", clip_dir, out, params))
    assert resumed.exit_code == 0, f"{where}\n{resumed.output}"
    assert f"{SHARDS - left} computed, {left} kept from an earlier run" in resumed.output, (
        f"{where}\n{resumed.output}")
    whole, again = read_manifest(tmp_path / "whole"), read_manifest(out)
    assert again == whole, where  # same shard checksums: the same bytes
    for shard in whole["shards"]:
        assert (out / shard["file"]).read_bytes() == (
            tmp_path / "whole" / shard["file"]).read_bytes(), f"{where}: {shard['file']} differs"

    rerun = CliRunner().invoke(app, extract_command(tmp_path / "world", clip_dir, out, params))
    assert f"0 computed, {SHARDS} kept" in rerun.output, f"{where}\n{rerun.output}"


def test_a_changed_image_is_encoded_again(tmp_path, clip_dir):
    index = make_world(tmp_path / "world", good=24, bad=False)
    clip = load_clip(clip_dir)
    run = dict(name="target_images", id_columns=["image_id"],
               settings=extract_settings(batch_size=4, shard_rows=8), device="cpu")
    first = extract_image_features(clip, tmp_path / "world", index, tmp_path / "fs", **run)
    draw(tmp_path / "world" / index["path"][10], seed=999)  # in shard 1
    second = extract_image_features(clip, tmp_path / "world", index, tmp_path / "fs", **run)
    assert (first.computed_shards, second.computed_shards, second.reused_shards) == (3, 1, 2)
    assert first.manifest["shards"][0] == second.manifest["shards"][0]
    assert first.manifest["shards"][1]["sha256"] != second.manifest["shards"][1]["sha256"]
    # Files with new times (as after a fresh checkout or `dvc pull`) are encoded again, and the
    # features come out as the same bytes: modification times never enter the shards.
    later = time.time() + 100
    for path in index["path"]:
        os.utime(tmp_path / "world" / path, (later, later))
    third = extract_image_features(clip, tmp_path / "world", index, tmp_path / "fs", **run)
    assert third.computed_shards == 3
    assert third.manifest == second.manifest


def shard_files(folder):
    """Every shard of a feature set: name -> (bytes, inode, mtime_ns); a shard rewritten (under
    a temp name, then renamed) gets another inode and time even if its bytes came out the same."""
    return {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(folder.glob("shard-*.parquet"))}


LOST = "shard-00002.parquet"  # rows 16-23, with the 4 bad files: its errors are recomputed too


def resume_with(tmp_path, clip_dir, first, second):
    """Extract 44 images (6 shards of 8, 4 bad files) with `first` = (batch_size, num_workers),
    lose shard 2 and the manifest as a kill would (a half-written temp file instead), and resume
    with `second`. Returns the first run's shards and manifest bytes, the resumed run's result
    and its shards."""
    index = make_world(tmp_path / "world", good=40, bad=True)
    clip = load_clip(clip_dir)

    def extract(out, batch_size, num_workers):
        settings = extract_settings(batch_size=batch_size, num_workers=num_workers,
                                    shard_rows=8, max_bad_fraction=0.2)
        return extract_image_features(clip, tmp_path / "world", index, out, name="target_images",
                                      id_columns=["image_id", "class_id"], settings=settings,
                                      device="cpu", progress=False)

    out = tmp_path / "fs"
    before = extract(out, *first)
    assert (before.computed_shards, before.reused_shards) == (6, 0)
    assert [e["row"] for e in before.manifest["errors"]] == [20, 21, 22, 23]  # all in shard 2
    shards, manifest = shard_files(out), (out / "manifest.json").read_bytes()
    (out / LOST).unlink()
    (out / "manifest.json").unlink()
    (out / (LOST + ".tmp")).write_bytes(shards[LOST][0][:100])
    after = extract(out, *second)
    assert not list(out.glob("*.tmp"))
    return shards, manifest, after, shard_files(out), extract


RESUMES = [  # (batch_size, num_workers) of the first run -> of the resumed one; shards of 8 rows
    pytest.param((4, 0), (4, 2), id="workers-0-to-2"),
    pytest.param((4, 0), (3, 2), id="batch-4-to-3-workers-0-to-2"),  # 3 does not divide 8
    pytest.param((3, 2), (16, 0), id="batch-3-to-16-workers-2-to-0"),  # 16 spans two shards
]


@pytest.mark.parametrize("first,second", RESUMES)
def test_a_resume_with_another_batch_size_and_worker_count_keeps_the_shards(tmp_path, clip_dir,
                                                                            first, second):
    shards, manifest, after, now, extract = resume_with(tmp_path, clip_dir, first, second)
    assert (after.computed_shards, after.reused_shards) == (1, 5)
    assert sorted(now) == sorted(shards)
    for name in shards:
        if name != LOST:  # kept, not rewritten: same bytes, same file, same time
            assert now[name] == shards[name], f"{name} was rewritten"
    # The lost shard is what an uninterrupted run with the new knobs writes: its batches never
    # straddle a shard, so its bytes do not depend on which shards were pending ...
    fresh = extract(tmp_path / "fresh", *second)
    assert now[LOST][0] == (tmp_path / "fresh" / LOST).read_bytes()
    # ... and it holds what the first run's did: the same ids, header (plan, key, the 4 bad
    # files) and embeddings up to float rounding (a batch size moves them by no more).
    old, new = (pq.read_table(pa.BufferReader(shards[LOST][0])),
                pq.read_table(pa.BufferReader(now[LOST][0])))
    assert new.schema.metadata == old.schema.metadata
    assert new.drop(["embedding"]).equals(old.drop(["embedding"]))
    np.testing.assert_allclose(*(np.stack(t.column("embedding").to_pylist()) for t in (new, old)),
                               atol=2e-3)
    expected = json.loads(manifest)
    expected["shards"][2]["sha256"] = hashlib.sha256(now[LOST][0]).hexdigest()
    assert after.manifest == expected == read_manifest(tmp_path / "fs")
    assert fresh.manifest["errors"] == after.manifest["errors"]
    if first[0] == second[0]:  # the worker count alone never changes a number: the same bytes
        assert now[LOST][0] == shards[LOST][0]
        assert (tmp_path / "fs" / "manifest.json").read_bytes() == manifest


def test_raising_the_pixel_limit_encodes_the_skipped_image(tmp_path, clip_dir):
    index = make_world(tmp_path / "world", good=8, bad=False)
    Image.new("RGB", (300, 200), (200, 30, 30)).save(tmp_path / "world" / index["path"][3],
                                                     format="PNG")  # no JPEG draft rescue
    clip = load_clip(clip_dir)
    run = dict(name="target_images", id_columns=["image_id"], device="cpu")
    small = dict(batch_size=4, shard_rows=4, max_bad_fraction=0.5)
    first = extract_image_features(clip, tmp_path / "world", index, tmp_path / "fs", **run,
                                   settings=extract_settings(**small, max_image_pixels=50_000))
    assert [e["reason"][:9] for e in first.manifest["errors"]] == ["too large"]
    second = extract_image_features(clip, tmp_path / "world", index, tmp_path / "fs", **run,
                                    settings=extract_settings(**small, max_image_pixels=100_000))
    assert second.manifest["errors"] == [] and second.manifest["rows"] == 8
    assert second.computed_shards == 2  # the limit is part of every shard's identity


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, clip_dir):
    pytest.importorskip("ray")
    from pipeline.features.ray_engine import RayImageEngine

    index = make_world(tmp_path / "world", good=30, bad=True)
    clip = load_clip(clip_dir)
    settings = extract_settings(batch_size=4, shard_rows=8, max_bad_fraction=0.2)
    run = dict(name="target_images", id_columns=["image_id", "class_id"], settings=settings,
               device="cpu")
    local = extract_image_features(clip, tmp_path / "world", index, tmp_path / "local", **run)
    ray_engine = RayImageEngine(clip_dir, settings.images.ray, init_kwargs={"num_cpus": 2})
    remote = extract_image_features(clip, tmp_path / "world", index, tmp_path / "ray",
                                    engine=ray_engine, **run)
    import ray

    ray.shutdown()
    assert remote.computed_shards == local.computed_shards == 5
    assert remote.manifest["errors"] == local.manifest["errors"]
    assert remote.manifest["input_hash"] == local.manifest["input_hash"]
    a, b = read_feature_set(tmp_path / "local"), read_feature_set(tmp_path / "ray")
    pd.testing.assert_frame_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=2e-3)  # float16 storage


@pytest.mark.parametrize("model,decode,bound", [("--clip", "pil", "pil-bound(2)"),
                                                ("--model", "pil", "pil-bound(2)"),
                                                ("--clip", "torchvision", "torchvision+resize")])
def test_bench_extract_prints_every_figure_and_its_bounds(tmp_path, clip_dir, model, decode,
                                                          bound):
    make_world(tmp_path / "world", good=12, bad=False)
    params = params_file(tmp_path)
    which = [model, str(clip_dir) if model == "--clip" else "fgvc-demo-tiny"]
    result = CliRunner().invoke(app, [
        "bench", "extract", "--images", str(tmp_path / "world" / "images"), *which, "--limit", "10", "--batch-size", "4", "--workers", "1", "--device", "cpu", "--processes", "2", "--decode", decode,
        "--json", str(tmp_path / "bench.json"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    for line in ["ours / model-only", "ours / decode-only", f"ours / {bound}",
                 "ours / min(that, model)", "ours / naive"]:
        assert line in result.output
    figures = json.loads((tmp_path / "bench.json").read_text())["figures"]
    device_bounds = ["torchvision-bound", "torchvision+resize"] if decode != "pil" else []
    assert [f["name"] for f in figures] == ["pil-bound(2)", *device_bounds, "decode", "model",
                                            "ours", "naive"]
    rgb_jpegs = sum(1 for i in range(10) if i % 4 < 2)  # CMYK and grayscale go through PIL
    for f in figures:
        assert f["images"] == (rgb_jpegs if f["name"] in device_bounds else 10), f["name"]
        assert f["per_second"] > 0 and f["peak_rss_mib"] > 0 and f["peak_tree_mib"] > 0


def test_device_jpeg_decoding_matches_pil_and_falls_back_for_the_rest(tmp_path, clip_dir):
    index = make_world(tmp_path / "world", good=16, bad=True)
    Image.open(tmp_path / "world" / index["path"][0]).save(tmp_path / "world" / "images" / "p.png")
    index.loc[0, "path"] = "images/p.png"  # not a JPEG: decoded by PIL in the workers
    clip = load_clip(clip_dir)
    run = dict(name="target_images", id_columns=["image_id"], device="cpu")
    options = dict(batch_size=4, shard_rows=8, max_bad_fraction=0.3)
    pil = extract_image_features(clip, tmp_path / "world", index, tmp_path / "pil",
                                 settings=extract_settings(**options), **run)
    on_device = extract_settings(**options, decode="torchvision")
    device = extract_image_features(clip, tmp_path / "world", index, tmp_path / "tv",
                                    settings=on_device, **run)
    assert device.manifest["errors"] == pil.manifest["errors"]  # truncated: refused by both
    assert device.manifest["variant"] == {"decode": "torchvision", "device": "cpu", "amp": "none",
                                          "max_image_pixels": on_device.images.max_image_pixels,
                                          "resize": "pillow-batched"}
    a, b = read_feature_set(tmp_path / "pil"), read_feature_set(tmp_path / "tv")
    pd.testing.assert_frame_equal(a.ids, b.ids)
    cosine = (a.embeddings * b.embeddings).sum(1) / (
        np.linalg.norm(a.embeddings, axis=1) * np.linalg.norm(b.embeddings, axis=1))
    # libjpeg-turbo decodes on the CPU as in PIL, and the batched resize is Pillow's filter:
    # the same pixels within one 8-bit level, so the same features within float16 storage.
    assert cosine.min() > 0.9999
    # A feature set is never a mix of decoders: switching recomputes every shard.
    again = extract_image_features(clip, tmp_path / "world", index, tmp_path / "pil",
                                   settings=on_device, **run)
    assert again.reused_shards == 0
