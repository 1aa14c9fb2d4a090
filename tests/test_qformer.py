import pytest
import torch

from pipeline.qformer import QFormerConfig, TextToImageQFormer, load_qformer, map_texts, save_qformer
from pipeline.qformer_training import train_qformer, validation_metrics

SMALL = QFormerConfig(text_width=12, image_width=10, num_queries=4, hidden_size=32, num_layers=1,
                      num_heads=2, intermediate_size=64, dropout=0.0)


def test_shapes_for_pooled_and_token_inputs():
    model = TextToImageQFormer(SMALL).eval()
    assert model(torch.randn(5, 12)).shape == (5, 10)
    tokens, mask = torch.randn(5, 7, 12), torch.ones(5, 7, dtype=torch.long)
    mask[:, 4:] = 0  # padding
    assert model(tokens, mask).shape == (5, 10)
    first = TextToImageQFormer(QFormerConfig(**{**SMALL.__dict__, "pooling": "first"}))
    assert first(torch.randn(3, 12)).shape == (3, 10)


def test_checkpoint_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = TextToImageQFormer(SMALL).eval()
    save_qformer(model, tmp_path, {"note": "x"})
    loaded, saved = load_qformer(tmp_path)
    x = torch.randn(4, 12)
    torch.testing.assert_close(model(x), loaded(x))
    assert saved["note"] == "x" and saved["config"]["hidden_size"] == 32
    assert map_texts(loaded, x).shape == (4, 10)


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
    history = train_qformer(
        model, text[:500], image[:500], val_text=text[val], val_images=image[val],
        val_caption_image=val_index, loss=loss, margin=0.0, weighting=weighting,
        temperature=0.07, epochs=15, batch_size=50, lr=3e-3, weight_decay=0.0,
        warmup_fraction=0.05, grad_clip=1.0, seed=0, show_progress=False)
    assert history[0]["epoch"] == 0 and len(history) == 16
    assert history[-1]["recall_at_5"] > history[0]["recall_at_5"] + 50
    assert history[-1]["mean_matched_cosine"] > 0.9 > history[0]["mean_matched_cosine"] + 0.5
    again = validation_metrics(model, text[val], image[val], val_index)
    assert again["recall_at_1"] == history[-1]["recall_at_1"]


def test_paper_weighting_favours_a_degenerate_predictor():
    # Why `weighting: balanced` exists: under the paper's 1/N^2 weighting the N^2 - N unmatched
    # hinge terms dominate, and one constant output opposite to every image (so every unmatched
    # cosine is <= 0) scores about 1/N, below a predictor that is right up to modest noise.
    from pipeline.losses import pairwise_cosine_loss
    g = torch.Generator().manual_seed(0)
    images = torch.randn(64, 10, generator=g) + 1.0
    constant = -images.mean(dim=0, keepdim=True).expand(64, -1)
    noisy_right = images + 1.0 * torch.randn(64, 10, generator=g)
    assert pairwise_cosine_loss(constant, images) < 2.0 / 64
    assert pairwise_cosine_loss(constant, images) < pairwise_cosine_loss(noisy_right, images)
    assert pairwise_cosine_loss(constant, images, weighting="balanced") > pairwise_cosine_loss(
        noisy_right, images, weighting="balanced")
