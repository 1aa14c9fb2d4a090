import hashlib
import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import extract_settings

from pipeline.clip import (FingerprintMismatch, create_clip, fingerprint_of, load_clip, read_card,
                           save_clip)
from pipeline.common import InputError
from pipeline.features import extract_text_features
from pipeline.features.store import (ShardPlan, iter_shards, read_feature_set, resume,
                                     write_feature_set, write_shard)

FINGERPRINT = {"model_name": "m", "pretrained": None, "weights_sha256": "abc", "embed_dim": 6,
               "preprocess": {"size": [64, 64]}}


def make(n=23, width=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = pd.DataFrame({"image_id": np.arange(100, 100 + n), "class_id": rng.integers(1, 5, n),
                        "split": rng.choice(["train", "test"], n)})
    return ids, rng.normal(size=(n, width)).astype(np.float32)


@pytest.mark.parametrize("precision,tolerance", [("float32", 0.0), ("float16", 2e-3)])
def test_round_trip_in_fixed_size_shards(tmp_path, precision, tolerance):
    ids, emb = make()
    manifest = write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT,
                                 shard_rows=10, precision=precision)
    assert [s["rows"] for s in manifest["shards"]] == [10, 10, 3]
    loaded = read_feature_set(tmp_path / "fs", FINGERPRINT)
    pd.testing.assert_frame_equal(loaded.ids, ids)
    assert loaded.embeddings.dtype == np.float32
    assert np.max(np.abs(loaded.embeddings - emb) / (np.abs(emb) + 1)) <= tolerance
    on_disk = json.loads((tmp_path / "fs" / "manifest.json").read_text())
    assert on_disk["rows"] == 23 and on_disk["width"] == 6 and on_disk["precision"] == precision
    assert not list((tmp_path / "fs").glob("*.tmp"))


def test_shards_describe_themselves(tmp_path):
    ids, emb = make()
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT, shard_rows=50, precision="float16")
    schema = pq.read_schema(tmp_path / "fs" / "shard-00000.parquet")
    assert json.loads(schema.metadata[b"fgvc.fingerprint"]) == FINGERPRINT
    assert schema.metadata[b"fgvc.width"] == b"6"
    assert str(schema.field("embedding").type) == "fixed_size_list<element: halffloat>[6]"


def test_streaming_reader_equals_whole_read(tmp_path):
    ids, emb = make(n=40)
    write_feature_set(tmp_path / "a", ids, emb, name="x", fingerprint=FINGERPRINT, shard_rows=16,
                      precision="float32")
    parts = list(iter_shards(tmp_path / "a", FINGERPRINT))
    assert [len(part_ids) for part_ids, _ in parts] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate([e for _, e in parts]), emb)
    np.testing.assert_array_equal(read_feature_set(tmp_path / "a").embeddings, emb)


def plan_for(ids, **changes):
    settings = dict(name="x", fingerprint=FINGERPRINT, width=6, precision="float16", shard_rows=10)
    return ShardPlan.build(ids, **{**settings, **changes})


def test_resume_keeps_only_shards_whose_inputs_and_model_match(tmp_path):
    ids, emb = make(n=30)
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT, shard_rows=10, precision="float16")
    (tmp_path / "fs" / "shard-00002.parquet.tmp").write_bytes(b"half a shard")
    assert sorted(resume(tmp_path / "fs", plan_for(ids)).kept) == [0, 1, 2]
    assert not (tmp_path / "fs" / "manifest.json").exists()  # rewritten when the run completes
    assert not list((tmp_path / "fs").glob("*.tmp"))

    changed = ids.copy()
    changed.loc[13, "class_id"] = 99  # one input row of shard 1 changes
    assert sorted(resume(tmp_path / "fs", plan_for(changed)).kept) == [0, 2]
    assert not (tmp_path / "fs" / "shard-00001.parquet").exists()

    other_model = dict(FINGERPRINT, weights_sha256="def")
    assert resume(tmp_path / "fs", plan_for(changed, fingerprint=other_model)).kept == {}
    assert not list((tmp_path / "fs").iterdir())


def flip_an_embedding_byte(shard):
    """Flip one byte inside the first stored embedding value: the file still parses as a shard
    of the same shape, only a checksum can tell."""
    first = pq.read_table(shard).column("embedding")[0].values[0].as_py()
    data = bytearray(shard.read_bytes())
    at = bytes(data).index(np.float16(first).tobytes())
    data[at] ^= 0x01
    shard.write_bytes(bytes(data))


def test_every_read_verifies_shard_checksums(tmp_path):
    """Issue 23: bytes flipped in a finished set's shard. Every reader's default refuses it in
    one line naming the shard, the set and how to rebuild it; the same read unverified would
    have returned the changed number without a word."""
    ids, emb = make(n=30)
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT, shard_rows=10,
                      precision="float16")
    intact = read_feature_set(tmp_path / "fs", FINGERPRINT)
    shard = tmp_path / "fs" / "shard-00001.parquet"
    flip_an_embedding_byte(shard)
    expected = (f"{shard} is damaged (its bytes do not have the checksum the manifest of the "
                f"feature set {tmp_path / 'fs'} recorded): re-run `extract` for it (or `dvc "
                "checkout` it from the cache)")
    with pytest.raises(InputError) as refused:
        read_feature_set(tmp_path / "fs", FINGERPRINT)
    assert str(refused.value) == expected  # one line
    with pytest.raises(InputError) as refused:
        list(iter_shards(tmp_path / "fs", FINGERPRINT))
    assert str(refused.value) == expected
    changed = read_feature_set(tmp_path / "fs", FINGERPRINT, verify=False)
    differs = np.argwhere(changed.embeddings != intact.embeddings)
    assert len(differs) == 1 and 10 <= differs[0][0] < 20  # one number, in shard 1's rows


def test_a_verified_read_is_the_unverified_read(tmp_path):
    ids, emb = make(n=45)
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT, shard_rows=16,
                      precision="float16")
    verified = read_feature_set(tmp_path / "fs", FINGERPRINT)
    unverified = read_feature_set(tmp_path / "fs", FINGERPRINT, verify=False)
    pd.testing.assert_frame_equal(verified.ids, unverified.ids)
    np.testing.assert_array_equal(verified.embeddings, unverified.embeddings)
    assert verified.manifest == unverified.manifest
    np.testing.assert_allclose(verified.embeddings, emb, atol=2e-3, rtol=2e-3)  # float16
    for (a_ids, a), (b_ids, b) in zip(iter_shards(tmp_path / "fs"),
                                      iter_shards(tmp_path / "fs", verify=False), strict=True):
        pd.testing.assert_frame_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("edit", [
    {"width": None}, {"rows": "23"}, {"fingerprint": []}, {"rows": 24},
    {"shards": [{"file": "shard-00000.parquet"}]},
    {"shards": [{"file": "../elsewhere.parquet", "sha256": "0"}]}])
def test_a_manifest_edited_out_of_shape_is_one_line_not_a_traceback(tmp_path, edit):
    ids, emb = make()
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT,
                      shard_rows=1024, precision="float16")
    path = tmp_path / "fs" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(InputError, match=f"^{re.escape(str(path))} is damaged .*: re-run "
                                         "`extract` for it") as refused:
        read_feature_set(tmp_path / "fs")
    assert "\n" not in str(refused.value)


def test_bench_read_times_both_reads_and_their_ratio(tmp_path):
    """`fgvc bench read` at a tiny size: both reads timed on one random set written by the
    store's writer, and their ratio; the set is gone afterwards."""
    from typer.testing import CliRunner

    from stages.cli import app

    result = CliRunner().invoke(app, ["bench", "read", "--rows", "3000", "--width", "32",
                                      "--shard-rows", "1024", "--repeats", "2", "--dir",
                                      str(tmp_path), "--json", str(tmp_path / "bench.json")])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert (figures["rows"], figures["width"], figures["shards"]) == (3000, 32, 3)
    for way in ("unverified", "verified"):
        assert len(figures["seconds"][way]) == 2 and all(t > 0 for t in figures["seconds"][way])
        assert re.search(rf"^{way} +\d+\.\d{{3}} +\d+\.\d{{3}}", result.output, re.M)
    ratio = figures["best"]["verified"] / figures["best"]["unverified"]
    assert figures["ratio"] == pytest.approx(ratio)
    assert f"verified / unverified = {ratio:.3f} (best)" in result.output
    assert f"verifying costs {100 * (ratio - 1):+.1f}% of the read" in result.output
    assert "goal at COCO's size" not in result.output  # said only at COCO's size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # the set removed


def test_a_shard_must_account_for_every_row_of_its_span(tmp_path):
    ids, emb = make(n=10)
    plan = plan_for(ids)
    with pytest.raises(ValueError, match="spans 10 rows but got 9 embeddings and 0 skipped"):
        write_shard(tmp_path, plan, 0, ids.iloc[:9], emb[:9].astype(np.float32))
    info = write_shard(tmp_path, plan, 0, ids.iloc[:9], emb[:9], [{"row": 9, "reason": "bad"}])
    assert info.rows == 9 and info.errors == [{"row": 9, "reason": "bad"}]


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    """Two real CLIPs saved as the `clip` stage saves them: the same tiny architecture and
    preprocessing, initialised from different seeds, so only their weights differ."""
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        folder = tmp_path_factory.mktemp(f"clip-seed{seed}")
        save_clip(create_clip("fgvc-demo-tiny", None), folder)
        folders.append(folder)
    return folders


CAPTIONS = pd.DataFrame({"image_id": np.arange(7), "text": [
    "a small red bird", "a bird", "a large bird with a long hooked bill", "blue",
    "a bird with a spotted breast and a short tail", "wings", "a grey bird on a branch"]})


def extract_captions(clip, out):
    return extract_text_features(clip, CAPTIONS, out, name="captions", id_columns=["image_id"],
                                 settings=extract_settings(batch_size=4, shard_rows=3),
                                 device="cpu")


def test_features_of_another_model_are_refused(tmp_path, two_clips):
    dir_a, dir_b = two_clips
    a, b = fingerprint_of(read_card(dir_a)), fingerprint_of(read_card(dir_b))
    weights = [hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
               for d in (dir_a, dir_b)]
    assert [a["weights_sha256"], b["weights_sha256"]] == weights
    assert weights[0][:12] != weights[1][:12]
    clip_a = load_clip(dir_a)
    extract_captions(clip_a, tmp_path / "fs")

    with pytest.raises(FingerprintMismatch) as refused:
        read_feature_set(tmp_path / "fs", b)
    message = str(refused.value)  # one line naming the set, both models and what differs
    assert "\n" not in message and str(tmp_path / "fs") in message
    assert f"made with CLIP fgvc-demo-tiny (trained here, weights {weights[0][:12]})" in message
    assert f"in use is fgvc-demo-tiny (trained here, weights {weights[1][:12]})" in message
    assert "(differs in: weights_sha256); extract it again with this CLIP" in message
    with pytest.raises(FingerprintMismatch, match=f"weights {weights[0][:12]}.*weights "
                                                  f"{weights[1][:12]}"):
        next(iter_shards(tmp_path / "fs", b))

    # With CLIP A's fingerprint the set reads, and it holds A's features, which B's are not.
    features = read_feature_set(tmp_path / "fs", a)
    assert features.ids["image_id"].tolist() == CAPTIONS["image_id"].tolist()
    assert [len(ids) for ids, _ in iter_shards(tmp_path / "fs", a)] == [3, 3, 1]
    with torch.no_grad():
        by_a, by_b = (load_clip(d).model.encode_text(clip_a.tokenize(CAPTIONS["text"].tolist())[0])
                      .numpy() for d in (dir_a, dir_b))
    np.testing.assert_allclose(features.embeddings, by_a, atol=2e-3, rtol=2e-3)  # float16
    assert np.abs(by_a - by_b).max() > 0.1


def test_extracting_with_another_model_recomputes_every_shard(tmp_path, two_clips):
    clip_a, clip_b = (load_clip(d) for d in two_clips)
    assert extract_captions(clip_a, tmp_path / "fs").computed_shards == 3
    again = extract_captions(clip_b, tmp_path / "fs")
    assert (again.computed_shards, again.reused_shards) == (3, 0)
    assert again.manifest["fingerprint"] == clip_b.fingerprint
    read_feature_set(tmp_path / "fs", clip_b.fingerprint)
    with pytest.raises(FingerprintMismatch, match="differs in: weights_sha256"):
        read_feature_set(tmp_path / "fs", clip_a.fingerprint)


def test_a_refusal_names_every_difference_and_the_pretrained_tag(tmp_path):
    """What two seeds of one architecture cannot show: another tag and preprocessing."""
    ids, emb = make()
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT, shard_rows=1024, precision="float16")
    other = dict(FINGERPRINT, pretrained="openai", weights_sha256="0123456789abcdef",
                 preprocess={"size": [224, 224]})
    with pytest.raises(FingerprintMismatch, match=re.escape(
            "made with CLIP m (trained here, weights abc), but the CLIP in use is m (openai, "
            "weights 0123456789ab) (differs in: preprocess, pretrained, weights_sha256)")):
        read_feature_set(tmp_path / "fs", other)


def test_unfinished_feature_set_is_not_read(tmp_path):
    (tmp_path / "fs").mkdir()
    with pytest.raises(InputError, match="manifest.json"):
        read_feature_set(tmp_path / "fs")


def test_resume_refuses_a_folder_that_is_not_a_feature_set(tmp_path):
    ids, emb = make(n=10)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("my notes")
    with pytest.raises(InputError, match=r"holds files that are not part of a feature set \(README.md\)"):
        resume(tmp_path / "notes", plan_for(ids))
    assert (tmp_path / "notes" / "README.md").read_text() == "my notes"
