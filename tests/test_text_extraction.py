"""Text feature sets: pooled embeddings and, when asked, per-token states stored without padding."""

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import extract_settings

from pipeline.clip.loading import create_clip, save_clip
from pipeline.features.store import read_feature_set, read_manifest
from pipeline.features.texts import extract_text_features

TEXTS = ["a small red bird", "a bird", "a large bird with a long hooked bill and grey wings",
         "blue", "a bird with a spotted breast and a short tail", "wings"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    torch.manual_seed(0)
    clip = create_clip("fgvc-demo-tiny", None)
    save_clip(clip, tmp_path_factory.mktemp("clip"))  # a saved CLIP has a fingerprint
    return clip


MORE_TEXTS = ["a tiny brown bird with a striped crown", "black and white", "a bird on a branch",
              "a yellow throat and a thin pointed bill", "grey"]


def texts(rows=TEXTS):
    return pd.DataFrame({"image_id": np.arange(len(rows)), "caption_index": 0, "text": rows})


def extract(clip, out, tokens, shard_rows=4, batch_size=3, rows=TEXTS):
    settings = extract_settings(batch_size=batch_size, shard_rows=shard_rows, precision="float32")
    return extract_text_features(clip, texts(rows), out, name="captions",
                                 id_columns=["image_id", "caption_index"], settings=settings,
                                 device="cpu", tokens=tokens)


def test_token_states_are_the_unpadded_final_layer(clip, tmp_path):
    result = extract(clip, tmp_path / "fs", tokens=True)
    assert result.manifest["token_width"] == 64 and result.computed_shards == 2
    features = read_feature_set(tmp_path / "fs", clip.fingerprint, tokens=True)
    real = (clip.tokenizer(TEXTS) != 0).sum(dim=1).numpy()
    np.testing.assert_array_equal(features.tokens.lengths, real)  # no padding stored
    assert features.tokens.values.shape == (real.sum(), 64)
    projection = clip.model.text_projection.detach().numpy()
    for i in range(len(TEXTS)):
        # the pooled embedding is the end token's state, projected: the states are the real ones
        end_token = features.tokens.row(i)[-1]
        np.testing.assert_allclose(end_token @ projection, features.embeddings[i], atol=1e-4)
    plain = read_feature_set(tmp_path / "fs", clip.fingerprint)
    assert plain.tokens is None
    np.testing.assert_array_equal(plain.embeddings, features.embeddings)


def test_pooled_embeddings_do_not_depend_on_keeping_tokens(clip, tmp_path):
    extract(clip, tmp_path / "plain", tokens=False)
    extract(clip, tmp_path / "tokens", tokens=True)
    np.testing.assert_allclose(read_feature_set(tmp_path / "plain").embeddings,
                               read_feature_set(tmp_path / "tokens").embeddings, atol=1e-6)
    with pytest.raises(ValueError, match="extract.texts.tokens: true"):
        read_feature_set(tmp_path / "plain", tokens=True)


def test_switching_tokens_on_recomputes_and_a_rerun_keeps(clip, tmp_path):
    assert extract(clip, tmp_path / "fs", tokens=False).computed_shards == 2
    assert extract(clip, tmp_path / "fs", tokens=True).computed_shards == 2  # other header
    again = extract(clip, tmp_path / "fs", tokens=True)
    assert (again.computed_shards, again.reused_shards) == (0, 2)
    assert read_feature_set(tmp_path / "fs", tokens=True).tokens.lengths.sum() > len(TEXTS) * 2
    # and off again: the shards are rewritten without their token states, not kept with them
    assert extract(clip, tmp_path / "fs", tokens=False).computed_shards == 2
    assert all("tokens" not in pq.read_schema(path).names for path in (tmp_path / "fs").glob("*.parquet"))
    extract(clip, tmp_path / "clean", tokens=False)
    assert read_manifest(tmp_path / "fs")["shards"] == read_manifest(tmp_path / "clean")["shards"]


def shard_files(folder):
    """Every shard of a feature set: name -> (bytes, inode, mtime_ns); a rewritten shard (temp
    name, then renamed) gets another inode and time even if its bytes come out the same."""
    return {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(folder.glob("shard-*.parquet"))}


LOST = "shard-00001.parquet"


def resume_with(clip, tmp_path, tokens, first, second):
    """Extract 11 texts (shards of 4, 4, 3) with batch size `first`, lose shard 1 and the manifest
    as a kill would, and resume with batch size `second`. Returns the first run's shards and
    manifest bytes, the resumed run's result and its shards."""
    run = dict(tokens=tokens, rows=TEXTS + MORE_TEXTS)
    before = extract(clip, tmp_path / "fs", batch_size=first, **run)
    assert (before.computed_shards, before.reused_shards) == (3, 0)
    shards, manifest = shard_files(tmp_path / "fs"), (tmp_path / "fs" / "manifest.json").read_bytes()
    (tmp_path / "fs" / LOST).unlink()
    (tmp_path / "fs" / "manifest.json").unlink()
    after = extract(clip, tmp_path / "fs", batch_size=second, **run)
    return shards, manifest, after, shard_files(tmp_path / "fs")


@pytest.mark.parametrize("tokens", [False, True], ids=["pooled", "tokens"])
def test_a_resume_with_another_batch_size_keeps_the_shards(clip, tmp_path, tokens):
    shards, manifest, after, now = resume_with(clip, tmp_path, tokens, first=4, second=3)
    assert (after.computed_shards, after.reused_shards) == (1, 2)
    assert sorted(now) == sorted(shards)
    for name in shards:
        if name != LOST:  # kept, not rewritten: same bytes, same file, same time
            assert now[name] == shards[name], f"{name} was rewritten"
    # The lost shard is what an uninterrupted run with the new batch size writes ...
    extract(clip, tmp_path / "fresh", tokens=tokens, batch_size=3, rows=TEXTS + MORE_TEXTS)
    assert now[LOST][0] == (tmp_path / "fresh" / LOST).read_bytes()
    # ... and holds what the first run's did: ids and texts, header, and the same numbers up to
    # float rounding, token states included.
    old, new = (pq.read_table(pa.BufferReader(shards[LOST][0])),
                pq.read_table(pa.BufferReader(now[LOST][0])))
    assert new.schema.metadata == old.schema.metadata
    assert new.select(["image_id", "caption_index", "text"]).equals(
        old.select(["image_id", "caption_index", "text"]))
    assert new.column_names == old.column_names == (
        ["image_id", "caption_index", "text", "embedding"] + (["tokens"] if tokens else []))
    for column in new.column_names[3:]:  # per text: (W,) embedding, (L_i, W) token states
        a, b = ([np.asarray(row) for row in t.column(column).to_pylist()] for t in (new, old))
        assert [x.shape for x in a] == [x.shape for x in b]
        np.testing.assert_allclose(np.concatenate(a), np.concatenate(b), atol=1e-5)
    expected = json.loads(manifest)
    expected["shards"][1]["sha256"] = hashlib.sha256(now[LOST][0]).hexdigest()
    assert after.manifest == expected == read_manifest(tmp_path / "fs")


def flip_a_data_byte(path):
    """Damage a shard as a failing disk would: one byte flipped in its stored numbers (the
    first embedding's first float32), its header and footer intact (it still parses as ours)."""
    first = pq.read_table(path).column("embedding")[0].values[0].as_py()
    data = bytearray(path.read_bytes())
    at = bytes(data).index(np.float32(first).tobytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_shard_is_computed_again_never_adopted(clip, tmp_path):
    """Issue 23: bytes flipped in a finished set's shard. The rerun does not keep it (its bytes
    no longer have the checksum the manifest recorded when it was written), says so naming it,
    writes it again and keeps the intact one: the set is back to its first bytes."""
    first = extract(clip, tmp_path / "fs", tokens=False)
    shards = {p.name: p.read_bytes() for p in (tmp_path / "fs").glob("shard-*.parquet")}
    manifest = read_manifest(tmp_path / "fs")
    flip_a_data_byte(tmp_path / "fs" / LOST)
    assert pq.read_metadata(tmp_path / "fs" / LOST).metadata  # still reads as a shard
    again = extract(clip, tmp_path / "fs", tokens=False)
    assert (again.computed_shards, again.reused_shards, again.damaged) == (1, 1, [LOST])
    assert f"computed again as damaged (their bytes no longer had the checksum recorded when " \
           f"they were written): {LOST}" in again.summary("captions")
    assert {p.name: p.read_bytes() for p in (tmp_path / "fs").glob("shard-*.parquet")} == shards
    assert read_manifest(tmp_path / "fs") == manifest == first.manifest
    assert extract(clip, tmp_path / "fs", tokens=False).damaged == []  # and now it is kept


def test_a_killed_runs_damaged_shard_is_computed_again(clip, tmp_path):
    """Issue 23: a run killed before its manifest leaves shards whose only record is the resume
    log written beside the set as each shard lands. A shard damaged since is computed again (the
    log's checksum, not the shard's own bytes, decides); with no record anywhere (log gone too)
    nothing is adopted and every shard is computed again. Both end in the first run's bytes."""
    from pipeline.features.store import resume_log_path

    extract(clip, tmp_path / "fs", tokens=False)
    shards = {p.name: p.read_bytes() for p in (tmp_path / "fs").glob("shard-*.parquet")}
    (tmp_path / "fs" / "manifest.json").unlink()  # as if killed before the manifest
    flip_a_data_byte(tmp_path / "fs" / LOST)
    again = extract(clip, tmp_path / "fs", tokens=False)
    assert (again.computed_shards, again.reused_shards, again.damaged) == (1, 1, [LOST])
    assert {p.name: p.read_bytes() for p in (tmp_path / "fs").glob("shard-*.parquet")} == shards

    (tmp_path / "fs" / "manifest.json").unlink()
    resume_log_path(tmp_path / "fs").unlink()
    unrecorded = extract(clip, tmp_path / "fs", tokens=False)
    assert (unrecorded.computed_shards, unrecorded.reused_shards) == (2, 0)
    assert {p.name: p.read_bytes() for p in (tmp_path / "fs").glob("shard-*.parquet")} == shards


@pytest.mark.parametrize("damage", ["truncated shard", "missing shard", "truncated manifest",
                                    "manifest of another shape"])
def test_a_damaged_set_is_one_error_naming_the_file(clip, tmp_path, damage):
    from pipeline.common import InputError

    extract(clip, tmp_path / "fs", tokens=False)
    shard, manifest = tmp_path / "fs" / LOST, tmp_path / "fs" / "manifest.json"
    if damage == "truncated shard":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "missing shard":
        shard.unlink()
    elif damage == "truncated manifest":
        manifest.write_bytes(manifest.read_bytes()[:50])
    else:
        manifest.write_text(json.dumps(["shards"]))
    named = manifest if "manifest" in damage else shard
    with pytest.raises(InputError, match=f"^{named}.*re-run `extract` for it") as error:
        read_feature_set(tmp_path / "fs")
    assert "\n" not in str(error.value)
