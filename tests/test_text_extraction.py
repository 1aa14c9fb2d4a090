"""Text feature sets: pooled embeddings and, when asked, per-token states stored without padding."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.clip.loading import create_clip, save_clip
from pipeline.features.images import ExtractOptions
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


def texts():
    return pd.DataFrame({"image_id": np.arange(len(TEXTS)), "caption_index": 0, "text": TEXTS})


def extract(clip, out, tokens, shard_rows=4):
    options = ExtractOptions(batch_size=3, shard_rows=shard_rows, precision="float32")
    return extract_text_features(clip, texts(), out, name="captions",
                                 id_columns=["image_id", "caption_index"], options=options,
                                 tokens=tokens)


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
