import numpy as np
import pytest
import torch

from pipeline.adapter import batch_streams, head_logits, train_linear_heads
from pipeline.evaluate import topk_accuracy


def blobs(n_per_class=40, classes=4, width=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, width, generator=g) * 2
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[labels] + torch.randn(len(labels), width, generator=g), labels


def test_batched_heads_equal_separate_runs():
    features, labels = blobs()
    rng = np.random.default_rng(0)
    pools = [np.arange(len(labels)), rng.choice(len(labels), 50, replace=False), np.arange(0, 160, 3)]
    seeds = [[0, 1], [0, 2], [5]]
    kwargs = dict(steps=60, batch_size=16, lr=0.05, weight_decay=0.01, logit_scale=1.0,
                  show_progress=False)
    w, b = train_linear_heads(features, labels, pools, 4, seeds=seeds, **kwargs)
    for h, (pool, seed) in enumerate(zip(pools, seeds)):
        w1, b1 = train_linear_heads(features, labels, [pool], 4, seeds=[seed], **kwargs)
        torch.testing.assert_close(w[h], w1[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b[h], b1[0], atol=1e-5, rtol=1e-4)
    accuracy = topk_accuracy(head_logits(w, b, features, 1.0), labels, 1)
    assert accuracy.shape == (3,) and (accuracy > 90).all()


def test_step_matches_plain_autograd_reference():
    """The batched step (logits laid out (H, C, B), baddbmm, one summed loss) is the textbook
    per-head step: one head at a time, einsum logits, mean cross-entropy, AdamW."""
    features, labels = blobs()
    pools = [np.arange(len(labels)), np.arange(0, 160, 3)]
    kwargs = dict(steps=30, batch_size=16, lr=0.05, weight_decay=0.01, logit_scale=2.0)
    w, b = train_linear_heads(features, labels, pools, 4, seeds=[[0], [1]], show_progress=False,
                              **kwargs)
    streams = batch_streams(pools, 30, 16, [[0], [1]])
    for h in range(2):
        weight = torch.zeros(1, 4, 8, requires_grad=True)
        bias = torch.zeros(1, 4, requires_grad=True)
        optimizer = torch.optim.AdamW([weight, bias], lr=0.05, weight_decay=0.01)
        for step in range(30):
            index = torch.as_tensor(streams[step, h])
            logits = head_logits(weight, bias, features[index], 2.0)[0]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(logits, labels[index]).backward()
            optimizer.step()
        torch.testing.assert_close(w[h], weight.detach()[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b[h], bias.detach()[0], atol=1e-5, rtol=1e-4)


def test_batch_streams_cover_each_pool_once_per_epoch():
    pools = [np.arange(10), np.arange(20, 26)]
    streams = batch_streams(pools, steps=5, batch_size=4, seeds=[1, 2])
    assert streams.shape == (5, 2, 4)  # step-major
    assert sorted(streams[:, 0].reshape(-1)[:10]) == list(range(10))
    assert set(streams[:, 1].reshape(-1)) == set(range(20, 26))
    assert sorted(streams[:, 1].reshape(-1)[:6]) == list(range(20, 26))


def test_topk_accuracy_hand_made():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_accuracy(logits, labels, 1).item() == pytest.approx(100 / 3, abs=1e-4)
    assert topk_accuracy(logits, labels, 2).item() == pytest.approx(200 / 3, abs=1e-4)
    assert topk_accuracy(logits, labels, 3).item() == pytest.approx(100.0, abs=1e-4)



def test_bench_adapter_times_the_same_heads_both_ways():
    from pipeline.bench_adapter import bench_adapter

    features, labels = blobs()
    pools = [np.arange(len(labels)), np.arange(0, 160, 2), np.arange(0, 160, 5)]
    result = bench_adapter(features, labels, pools, [[0], [1], [2]], 4, steps=20, batch_size=8,
                           lr=0.05, weight_decay=0.0, logit_scale=1.0)
    assert result.heads == 3 and result.steps == 20
    assert result.batched_seconds > 0 and result.sequential_seconds > 0
    assert result.max_weight_difference < 1e-5  # the two ways train the same heads
    assert "sequential / batched" in result.report()
