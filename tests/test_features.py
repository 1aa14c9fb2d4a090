import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.features import FingerprintMismatch, ShardWriter, read_feature_set, write_feature_set

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
                                 shard_rows=10, precision=precision, input_hash="h")
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
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT, shard_rows=50)
    schema = pq.read_schema(tmp_path / "fs" / "shard-00000.parquet")
    assert json.loads(schema.metadata[b"fgvc.fingerprint"]) == FINGERPRINT
    assert schema.metadata[b"fgvc.width"] == b"6"
    assert str(schema.field("embedding").type) == "fixed_size_list<element: halffloat>[6]"


def test_streamed_batches_equal_one_write(tmp_path):
    ids, emb = make(n=40)
    writer = ShardWriter(tmp_path / "a", name="x", fingerprint=FINGERPRINT, width=6, shard_rows=16,
                         precision="float32")
    for start in range(0, 40, 7):
        writer.add(ids.iloc[start:start + 7], emb[start:start + 7])
    writer.close()
    loaded = read_feature_set(tmp_path / "a")
    np.testing.assert_array_equal(loaded.embeddings, emb)
    assert loaded.ids["image_id"].tolist() == ids["image_id"].tolist()


def test_features_of_another_model_are_refused(tmp_path):
    ids, emb = make()
    write_feature_set(tmp_path / "fs", ids, emb, name="x", fingerprint=FINGERPRINT)
    other = dict(FINGERPRINT, weights_sha256="def")
    with pytest.raises(FingerprintMismatch, match="weights_sha256"):
        read_feature_set(tmp_path / "fs", other)


def test_unfinished_feature_set_is_not_read(tmp_path):
    (tmp_path / "fs").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        read_feature_set(tmp_path / "fs")
