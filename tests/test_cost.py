"""Cost up front: a job that would take hours on the CPU says so before it starts."""

import numpy as np
import torch

from pipeline.common import cpu_cost_warning
from pipeline.qformer import PooledTexts, QFormerConfig, TextToImageQFormer, seconds_per_step
from stages.common import say


def test_a_long_cpu_job_is_announced_with_its_duration_and_the_fix():
    line = cpu_cost_warning("cpu", 5540, lambda: 15.0, "steps", "Use a GPU.")
    assert line == ("WARNING: running on the CPU, this would take about 23.1 hours from scratch "
                    "(5,540 steps at 15 s each, measured here). Use a GPU.")
    line = cpu_cost_warning("cpu", 123_287, lambda: 1.5, "images", "GPU!")
    assert "about 2.1 days" in line


def test_a_stage_says_warnings_on_stderr_and_the_rest_on_stdout(capsys):
    """The cost warning must reach a user who sends the progress lines to a file."""
    print_line = say("extract@b32")
    print_line("encoding 10 images")
    print_line(cpu_cost_warning("cpu", 5540, lambda: 15.0, "steps", "Use a GPU."))
    out, err = capsys.readouterr()
    assert out == "extract@b32: encoding 10 images\n"
    assert err.startswith("extract@b32: WARNING: running on the CPU, this would take about 23.1")


def test_short_jobs_and_gpu_jobs_are_not_warned_about_nor_timed():
    assert cpu_cost_warning("cpu", 1200, lambda: 0.01, "images", "") is None
    def never():
        raise AssertionError("a GPU job must not be timed on the CPU")
    assert cpu_cost_warning("cuda", 10**9, never, "steps", "") is None


def test_a_qformer_step_is_timed_without_leaving_gradients():
    torch.manual_seed(0)
    model = TextToImageQFormer(QFormerConfig(text_width=16, image_width=16, num_queries=4,
                                             hidden_size=32, num_layers=1, num_heads=2,
                                             intermediate_size=64))
    texts = PooledTexts(torch.randn(40, 16))
    seconds = seconds_per_step(model, texts, batch_size=64)  # more than there are texts
    assert 0 < seconds < 5
    assert all(p.grad is None for p in model.parameters())
    assert np.isfinite(seconds)


def test_a_qformer_step_is_timed_at_the_real_batch_size_after_a_warm_up(monkeypatch):
    """Timing 32 texts and scaling to the batch overstated the demo's CPU training 30-55x:
    the timed steps run the batch training will run, after one untimed step."""
    torch.manual_seed(0)
    model = TextToImageQFormer(QFormerConfig(text_width=16, image_width=16, num_queries=4,
                                             hidden_size=32, num_layers=1, num_heads=2,
                                             intermediate_size=64))
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward",
                        lambda *a, **k: seen.append(len(a[0])) or forward(*a, **k))
    seconds_per_step(model, PooledTexts(torch.randn(300, 16)), batch_size=256, repeats=3)
    assert seen == [256] * 4  # the warm-up, then three timed steps
    seen.clear()
    seconds_per_step(model, PooledTexts(torch.randn(40, 16)), batch_size=256)
    assert seen == [40] * 3  # fewer texts than a batch: all of them
