import numpy as np
import pytest
import torch

from pipeline.features.store import RaggedTokens
from pipeline.qformer.model import (QFormerConfig, TextToImageQFormer, load_qformer, map_texts,
                                    save_qformer)
from pipeline.qformer.settings import QFormerModel, TrainQFormer
from pipeline.qformer.text_inputs import PooledTexts, TokenTexts
from pipeline.qformer.training import train_qformer, validation_metrics

SMALL = QFormerConfig(text_width=12, image_width=10, num_queries=4, hidden_size=32, num_layers=1,
                      num_heads=2, intermediate_size=64, dropout=0.0)


def test_shapes_for_pooled_and_token_inputs():
    model = TextToImageQFormer(SMALL).eval()
    assert model(torch.randn(5, 12)).shape == (5, 10)
    tokens, mask = torch.randn(5, 7, 12), torch.ones(5, 7, dtype=torch.long)
    mask[:, 4:] = 0  # padding
    assert model(tokens, mask).shape == (5, 10)
    first = TextToImageQFormer(SMALL.model_copy(update={"pooling": "first"}))
    assert first(torch.randn(3, 12)).shape == (3, 10)


def test_checkpoint_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = TextToImageQFormer(SMALL).eval()
    save_qformer(model, tmp_path, {"note": "x"})
    loaded, saved = load_qformer(tmp_path)
    x = torch.randn(4, 12)
    torch.testing.assert_close(model(x), loaded(x))
    assert saved["note"] == "x" and saved["config"]["hidden_size"] == 32
    assert map_texts(loaded, PooledTexts(x)).shape == (4, 10)


@pytest.mark.parametrize("loss,weighting", [("pairwise_cosine", "balanced"),
                                            ("info_nce", "all_pairs")])
def test_training_raises_held_out_matched_cosine(loss, weighting):
    # Image features are a fixed linear function of text features plus a shared offset (as CLIP
    # features share a mean direction); the Q-Former must learn the map from pairs.
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(12, 10, generator=g)
    text = torch.randn(600, 12, generator=g)
    image = text @ mix + 0.5 + 0.1 * torch.randn(600, 10, generator=g)
    val = slice(500, 600)
    val_index = torch.arange(100)
    torch.manual_seed(0)
    model = TextToImageQFormer(SMALL)
    texts = PooledTexts(text)
    history = train_qformer(
        model, texts.subset(range(500)), image[:500], val_text=texts.subset(range(500, 600)),
        val_images=image[val],
        val_caption_image=val_index, compile=False, show_progress=False,
        settings=TrainQFormer(loss=loss, margin=0.0, weighting=weighting, temperature=0.07,
                              epochs=15, batch_size=50, lr=3e-3, weight_decay=0.0,
                              warmup_fraction=0.05, grad_clip=1.0, seed=0))
    assert history[0]["epoch"] == 0 and len(history) == 16
    assert history[-1]["recall_at_5"] > history[0]["recall_at_5"] + 50
    assert history[-1]["mean_matched_cosine"] > 0.9 > history[0]["mean_matched_cosine"] + 0.5
    again = validation_metrics(model, PooledTexts(text[val]), image[val], val_index)
    assert again["recall_at_1"] == history[-1]["recall_at_1"]


def ragged(lengths, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(int(sum(lengths)), width, generator=g).numpy()
    return RaggedTokens(values, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def test_token_batches_are_padded_on_gather_and_masked():
    tokens = ragged([3, 1, 5, 2], width=6)
    texts = TokenTexts.from_ragged(tokens, "cpu")
    states, mask = texts.batch(torch.tensor([2, 1]))
    assert states.shape == (2, 5, 6) and mask.tolist() == [[1] * 5, [1, 0, 0, 0, 0]]
    np.testing.assert_array_equal(states[0].numpy(), tokens.row(2))
    np.testing.assert_array_equal(states[1, :1].numpy(), tokens.row(1))
    assert states[1, 1:].abs().sum() == 0  # padding is zeros, never a neighbour's tokens
    view = texts.subset([3, 0]).subset([1])  # views compose without copying the values
    states, mask = view.batch(torch.tensor([0]))
    np.testing.assert_array_equal(states[0].numpy(), tokens.row(0))
    assert len(view) == 1 and view.values is texts.values
    # padding cannot change the output: a text alone or beside a longer one maps the same
    model = TextToImageQFormer(SMALL.model_copy(update={"text_width": 6})).eval()
    alone = map_texts(model, texts.subset([1]))
    beside = map_texts(model, texts.subset([1, 2]))
    np.testing.assert_allclose(alone[0], beside[0], atol=1e-5)


def test_training_on_token_states_raises_held_out_matched_cosine():
    # The image feature is a fixed linear map of the *mean* of a text's token states: the
    # Q-Former must attend over every real token (lengths 2-9) and ignore the padding.
    g = np.random.default_rng(0)
    lengths = g.integers(2, 10, 600)
    tokens = ragged(lengths, width=12, seed=1)
    mix = torch.randn(12, 10, generator=torch.Generator().manual_seed(2))
    means = torch.stack([torch.as_tensor(tokens.row(i)).mean(dim=0) for i in range(600)])
    image = means @ mix * 3 + 0.5
    texts = TokenTexts.from_ragged(tokens, "cpu")
    torch.manual_seed(0)
    model = TextToImageQFormer(SMALL)
    history = train_qformer(
        model, texts.subset(range(500)), image[:500], val_text=texts.subset(range(500, 600)),
        val_images=image[500:], val_caption_image=torch.arange(100), compile=False,
        show_progress=False, settings=TrainQFormer(
            loss="pairwise_cosine", margin=0.0, weighting="balanced", temperature=0.07, epochs=15,
            batch_size=50, lr=3e-3, weight_decay=0.0, warmup_fraction=0.05, grad_clip=1.0, seed=0))
    assert history[-1]["mean_matched_cosine"] > 0.9 > history[0]["mean_matched_cosine"] + 0.5
    assert history[-1]["recall_at_5"] > 90 > history[0]["recall_at_5"] + 50


def test_paper_weighting_favours_a_degenerate_predictor():
    # Why `weighting: balanced` exists: under the paper's 1/N^2 weighting the N^2 - N unmatched
    # hinge terms dominate, and one constant output opposite to every image (so every unmatched
    # cosine is <= 0) scores about 1/N, below a predictor that is right up to modest noise.
    from pipeline.qformer.losses import pairwise_cosine_loss
    g = torch.Generator().manual_seed(0)
    images = torch.randn(64, 10, generator=g) + 1.0
    constant = -images.mean(dim=0, keepdim=True).expand(64, -1)
    noisy_right = images + 1.0 * torch.randn(64, 10, generator=g)
    assert pairwise_cosine_loss(constant, images, weighting="all_pairs") < 2.0 / 64
    assert pairwise_cosine_loss(constant, images, weighting="all_pairs") < pairwise_cosine_loss(noisy_right, images, weighting="all_pairs")
    assert pairwise_cosine_loss(constant, images, weighting="balanced") > pairwise_cosine_loss(
        noisy_right, images, weighting="balanced")


def test_bench_qformer_times_the_loop_against_the_one_it_replaced():
    """On the CPU the eager loops run the same numbers (the fused optimiser is CUDA's): the same
    weights, so the bench compares speed, not different training. The compiled forward fuses
    kernels, which reorders float sums: the same weights within float32 rounding."""
    from pipeline.bench import bench_qformer

    settings = TrainQFormer(
        model=QFormerModel(num_queries=4, hidden_size=32, num_layers=1, num_heads=2,
                           intermediate_size=64),
        loss="pairwise_cosine", margin=0.0, weighting="balanced", temperature=0.07, lr=1e-3,
        weight_decay=0.05, warmup_fraction=0.05, grad_clip=1.0, batch_size=16, seed=0)
    result = bench_qformer(settings, width=16, pairs=100, device="cpu", repeats=1, compile=False)
    assert result.pairs == 96 and result.tokens_per_pair == 5  # 6 whole batches; 4 queries + 1
    assert result.weight_difference == {"ours": 0.0}
    assert set(result.seconds) == {"before", "ours"} and min(result.seconds.values()) > 0
    assert result.tflops("ours") == pytest.approx(
        6 * result.parameters * 5 * 96 / result.seconds["ours"] / 1e12)
    assert "ours / before" in result.report() and "compiled" not in result.report()
    no_dropout = settings.model_copy(update={  # compiled dropout draws other masks
        "model": settings.model.model_copy(update={"dropout": 0.0})})
    compiled = bench_qformer(no_dropout, width=16, pairs=100, device="cpu", repeats=1,
                             compile=True)
    assert set(compiled.seconds) == {"before", "ours", "compiled"}
    assert compiled.weight_difference["ours"] == 0.0
    assert compiled.weight_difference["compiled"] < 1e-4
    assert "compiled / before" in compiled.report()


def test_the_stage_s_training_gives_the_same_bytes_twice(tmp_path):
    """`train_on_coco` (the train_qformer stage's entry) is seeded, its random initial weights
    included: a rerun writes the same checkpoint, so it never makes the adapters stale."""
    import pandas as pd

    from pipeline.features.store import write_feature_set
    from pipeline.qformer import train_on_coco

    fingerprint = {"model_name": "x", "pretrained": None, "weights_sha256": "0", "embed_dim": 12,
                   "preprocess": {}}
    g = np.random.default_rng(0)
    images = pd.DataFrame({"image_id": np.arange(40), "split": ["train"] * 30 + ["val"] * 10})
    captions = pd.DataFrame({"image_id": np.repeat(np.arange(40), 2),
                             "caption_index": np.tile([0, 1], 40)})
    for name, ids in (("coco_images", images), ("coco_captions", captions)):
        write_feature_set(tmp_path / "extract" / name, ids, g.normal(size=(len(ids), 12)),
                          name=name, fingerprint=fingerprint, shard_rows=32, precision="float32")
    settings = TrainQFormer(model=QFormerModel(num_queries=2, hidden_size=16, num_layers=1,
                                               num_heads=2, intermediate_size=32),
                            epochs=2, batch_size=8)
    written = []
    for run in ("a", "b"):
        trained = train_on_coco(tmp_path / "extract", fingerprint, settings, "cpu", say=print)
        trained.save(tmp_path / run)
        written.append({p.name: p.read_bytes() for p in (tmp_path / run).iterdir()})
    assert written[0] == written[1] and set(written[0]) == {"qformer.safetensors", "qformer.json"}
    assert len(trained.history) == 3 and trained.info["clip_fingerprint"] == fingerprint
