import numpy as np
import pytest
import torch

from pipeline.adapter.heads import EarlyStopping, batch_streams, head_logits, train_linear_heads
from pipeline.evaluate.metrics import topk_accuracy


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
    heads = train_linear_heads(features, labels, pools, 4, seeds=seeds, **kwargs)
    w, b = heads.weight, heads.bias
    for h, (pool, seed) in enumerate(zip(pools, seeds)):
        alone = train_linear_heads(features, labels, [pool], 4, seeds=[seed], **kwargs)
        torch.testing.assert_close(w[h], alone.weight[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b[h], alone.bias[0], atol=1e-5, rtol=1e-4)
    accuracy = topk_accuracy(head_logits(w, b, features, 1.0), labels, 1)
    assert accuracy.shape == (3,) and (accuracy > 90).all()
    assert (heads.best_step == 60).all() and np.isnan(heads.val_top1).all()


def test_step_matches_plain_autograd_reference():
    """The batched step (logits laid out (H, C, B), baddbmm, one summed loss) is the textbook
    per-head step: one head at a time, einsum logits, mean cross-entropy, AdamW."""
    features, labels = blobs()
    pools = [np.arange(len(labels)), np.arange(0, 160, 3)]
    kwargs = dict(steps=30, batch_size=16, lr=0.05, weight_decay=0.01, logit_scale=2.0)
    heads = train_linear_heads(features, labels, pools, 4, seeds=[[0], [1]], show_progress=False,
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
        torch.testing.assert_close(heads.weight[h], weight.detach()[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(heads.bias[h], bias.detach()[0], atol=1e-5, rtol=1e-4)


def test_batch_streams_cover_each_pool_once_per_epoch():
    pools = [np.arange(10), np.arange(20, 26)]
    streams = batch_streams(pools, steps=5, batch_size=4, seeds=[1, 2])
    assert streams.shape == (5, 2, 4)  # step-major
    assert sorted(streams[:, 0].reshape(-1)[:10]) == list(range(10))
    assert set(streams[:, 1].reshape(-1)) == set(range(20, 26))
    assert sorted(streams[:, 1].reshape(-1)[:6]) == list(range(20, 26))


def overfitting_problem():
    """12 training points with 40% of their labels flipped, 200 clean validation points in 32
    dimensions: validation top-1 rises for a few steps, then falls as the head fits the noise."""
    g = torch.Generator().manual_seed(0)
    classes, width = 4, 32
    centres = torch.randn(classes, width, generator=g)

    def draw(n):
        y = torch.arange(classes).repeat(n // classes)
        return centres[y] + 1.5 * torch.randn(len(y), width, generator=g), y

    train_x, train_y = draw(12)
    val_x, val_y = draw(200)
    flip = torch.rand(len(train_y), generator=g) < 0.4
    train_y[flip] = torch.randint(0, classes, (int(flip.sum()),), generator=g)
    features, labels = torch.cat([train_x, val_x]), torch.cat([train_y, val_y])
    return features, labels, np.arange(12), np.arange(12, len(labels))


def val_top1(weight, bias, features, labels, rows):
    logits = head_logits(weight, bias, features[rows], 1.0)
    return topk_accuracy(logits, labels[rows], 1)


def test_early_stopping_keeps_the_best_step():
    features, labels, pool, val = overfitting_problem()
    kwargs = dict(batch_size=4, lr=0.02, weight_decay=0.0, logit_scale=1.0, seeds=[[0]],
                  show_progress=False)
    curve = {}  # validation top-1 after each evaluated step, from plain runs of that length
    for step in range(4, 61, 4):
        plain = train_linear_heads(features, labels, [pool], 4, steps=step, **kwargs)
        curve[step] = val_top1(plain.weight, plain.bias, features, labels, val).item()
    heads = train_linear_heads(features, labels, [pool], 4, steps=60,
                               early_stopping=EarlyStopping([val], 4, 3), **kwargs)
    best = int(heads.best_step[0])
    # the curve peaks, then falls: the head stops 3 evaluations after its peak
    assert best == max(curve, key=lambda s: (curve[s], -s)) == 8
    assert curve[60] < curve[best] - 10
    assert heads.stop_step[0] == best + 3 * 4 == heads.steps_run
    assert heads.val_top1[0] == pytest.approx(curve[best])
    # the weights are those of the best step: the same as a plain run of that many steps
    plain = train_linear_heads(features, labels, [pool], 4, steps=best, **kwargs)
    torch.testing.assert_close(heads.weight, plain.weight, atol=0, rtol=0)
    torch.testing.assert_close(heads.bias, plain.bias, atol=0, rtol=0)


def test_early_stopping_batched_heads_equal_separate_runs():
    features, labels, _, _ = overfitting_problem()
    blob_x, blob_y = blobs(n_per_class=30, width=32, seed=1)
    features, labels = torch.cat([features, blob_x]), torch.cat([labels, blob_y])
    noisy, clean = np.arange(12), np.arange(212, 332)
    pools = [noisy, clean[::2], clean[::3], noisy]
    val_rows = [np.arange(12, 212), clean[1::2], clean[1::2], np.arange(12, 112)]
    seeds = [[0], [1], [2], [3]]
    kwargs = dict(steps=80, batch_size=4, lr=0.02, weight_decay=0.01, logit_scale=1.0,
                  show_progress=False)
    heads = train_linear_heads(features, labels, pools, 4, seeds=seeds,
                               early_stopping=EarlyStopping(val_rows, 4, 3), **kwargs)
    assert heads.stop_step.min() < heads.stop_step.max()  # some heads froze before others
    for h in range(len(pools)):
        alone = train_linear_heads(features, labels, [pools[h]], 4, seeds=[seeds[h]],
                                   early_stopping=EarlyStopping([val_rows[h]], 4, 3), **kwargs)
        assert alone.best_step[0] == heads.best_step[h]
        assert alone.stop_step[0] == heads.stop_step[h] == alone.steps_run
        assert alone.val_top1[0] == heads.val_top1[h]
        torch.testing.assert_close(heads.weight[h], alone.weight[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(heads.bias[h], alone.bias[0], atol=1e-5, rtol=1e-4)
    assert heads.steps_run == heads.stop_step.max()


def test_early_stopping_needs_validation_rows_for_every_head():
    features, labels = blobs()
    with pytest.raises(ValueError, match="head 1 has no validation rows"):
        train_linear_heads(features, labels, [np.arange(10), np.arange(10)], 4, steps=5,
                           batch_size=4, lr=0.1, weight_decay=0.0, logit_scale=1.0,
                           seeds=[[0], [1]], show_progress=False,
                           early_stopping=EarlyStopping([np.arange(10, 20), []], 2, 2))


def test_topk_accuracy_hand_made():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_accuracy(logits, labels, 1).item() == pytest.approx(100 / 3, abs=1e-4)
    assert topk_accuracy(logits, labels, 2).item() == pytest.approx(200 / 3, abs=1e-4)
    assert topk_accuracy(logits, labels, 3).item() == pytest.approx(100.0, abs=1e-4)


def test_bench_adapter_times_the_same_heads_both_ways():
    from pipeline.bench.adapter import bench_adapter

    features, labels = blobs()
    pools = [np.arange(len(labels)), np.arange(0, 160, 2), np.arange(0, 160, 5)]
    result = bench_adapter(features, labels, pools, [[0], [1], [2]], 4, repeats=2, sample=None,
                           steps=20, batch_size=8, lr=0.05, weight_decay=0.0, logit_scale=1.0)
    assert result.heads == 3 and result.steps == 20 and result.repeats == 2
    assert result.batched_seconds > 0 and result.sequential_seconds > 0
    assert result.max_weight_difference < 1e-5  # the two ways train the same heads
    assert "sequential / batched" in result.report()
    sampled = bench_adapter(features, labels, pools, [[0], [1], [2]], 4, repeats=1, sample=2,
                            steps=20, batch_size=8, lr=0.05, weight_decay=0.0, logit_scale=1.0)
    assert sampled.sampled_heads == 2 and sampled.max_weight_difference < 1e-5
    assert "extrapolated from 2 of the 3 heads" in sampled.report()
