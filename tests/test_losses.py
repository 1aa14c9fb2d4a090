import math

import pytest
import torch

from pipeline.qformer.losses import info_nce_loss, pairwise_cosine_loss, qformer_loss

I = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def test_pairwise_cosine_is_zero_for_perfectly_matched_orthogonal_pairs():
    assert pairwise_cosine_loss(I.clone(), I, weighting="all_pairs").item() == pytest.approx(0.0, abs=1e-7)


def test_pairwise_cosine_penalises_swapped_pairs_fully():
    # S = [[0, 1], [1, 0]]: both matched pairs cost 1 - 0, both unmatched max(0, 1): L = 4/4.
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert pairwise_cosine_loss(swapped, I, weighting="all_pairs").item() == pytest.approx(1.0, abs=1e-6)


def test_pairwise_cosine_hand_computed_value_and_margin():
    pred = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # I'_0 at 45 degrees, I'_1 = I_1
    c = 1 / math.sqrt(2)
    # matched: (1 - c) + 0; unmatched: max(0, 0 - m) + max(0, c - m); averaged over 4 pairs
    assert pairwise_cosine_loss(pred, I, weighting="all_pairs").item() == pytest.approx((1 - c + c) / 4, abs=1e-6)
    assert pairwise_cosine_loss(pred, I, margin=0.5, weighting="all_pairs").item() == pytest.approx(
        (1 - c + c - 0.5) / 4, abs=1e-6)


def test_balanced_weighting_gives_matched_pairs_equal_say():
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert pairwise_cosine_loss(swapped, I, weighting="balanced").item() == pytest.approx(2.0)
    pred = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    c = 1 / math.sqrt(2)
    # matched mean (1 - c + 0) / 2; unmatched mean (0 + c) / 2
    assert pairwise_cosine_loss(pred, I, weighting="balanced").item() == pytest.approx(
        (1 - c) / 2 + c / 2, abs=1e-6)
    with pytest.raises(ValueError, match="weighting"):
        pairwise_cosine_loss(pred, I, weighting="sqrt")


def test_pairwise_cosine_gradient_pulls_matched_pairs_together():
    # The SPEC's typeset equation has the cases swapped; with the intended sign, a gradient
    # step must raise the matched cosines and lower the unmatched ones.
    torch.manual_seed(0)
    target = torch.randn(6, 8)
    pred = torch.randn(6, 8, requires_grad=True)
    before = torch.nn.functional.cosine_similarity(pred, target).mean().item()
    opt = torch.optim.Adam([pred], lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        pairwise_cosine_loss(pred, target, weighting="all_pairs").backward()
        opt.step()
    after = torch.nn.functional.cosine_similarity(pred, target).mean().item()
    assert after > before + 0.5


def test_info_nce_hand_computed_values():
    expected = math.log(1 + math.exp(-1))  # -log(e^1 / (e^1 + e^0)), both directions alike
    assert info_nce_loss(I.clone(), I, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)
    # cosine ignores scale; the dot-product variant sees the larger logits
    assert info_nce_loss(2 * I, I, 1.0, "cosine").item() == pytest.approx(expected, abs=1e-6)
    assert info_nce_loss(2 * I, I, 1.0, "dot").item() == pytest.approx(
        math.log(1 + math.exp(-2)), abs=1e-6)
    assert info_nce_loss(I.clone(), I, temperature=0.5).item() == pytest.approx(
        math.log(1 + math.exp(-2)), abs=1e-6)


def test_loss_dispatch_by_name():
    pred = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    fixed = dict(margin=0.0, temperature=1, weighting="all_pairs")
    assert qformer_loss("pairwise_cosine", pred, I, **fixed).item() == pytest.approx(1.0)
    assert qformer_loss("info_nce_dot", 2 * I, I, **fixed).item() == pytest.approx(
        math.log(1 + math.exp(-2)), abs=1e-6)
    with pytest.raises(ValueError, match="unknown loss"):
        qformer_loss("mse", pred, I, **fixed)
