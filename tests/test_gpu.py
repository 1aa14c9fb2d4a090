"""The CUDA paths, against the CPU's: GPU JPEG decoding (torchvision's and nvImageCodec's) and
batched resizing, float16 autocast extraction, the Q-Former's and the adapters' training, and the
whole demo's `dvc repro`. Marked `gpu`: they skip where torch sees no CUDA device.

`FGVC_TEST_DEVICE=cpu python -m pytest tests/test_gpu.py` runs them with the CPU standing in for
the GPU: it checks the tests' own code (both sides then run the same numbers), not the CUDA paths.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from conftest import copy_repo, extract_settings
from pipeline.adapter.heads import train_linear_heads
from pipeline.clip.loading import create_clip, load_clip
from pipeline.features.images import extract_image_features
from pipeline.features.preprocessing import split_preprocess
from pipeline.features.store import read_feature_set
from pipeline.features.texts import extract_text_features
from pipeline.qformer import (PooledTexts, QFormerConfig, TextToImageQFormer, TrainQFormer,
                             train_qformer)

DEVICE = os.environ.get("FGVC_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return torch.nn.functional.cosine_similarity(a, b, dim=1).numpy()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """JPEGs with photo-like smooth content at COCO-like sizes, and their index."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(24):
        height, width = (480, 640) if i % 2 else (375, 500)
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        phase = rng.uniform(0, 6, 3)
        pixels = np.stack([np.sin(6 * x + 4 * y + p) for p in phase], axis=-1)
        image = ((pixels + 1) * 127.5 + rng.normal(0, 4, (height, width, 3))).clip(0, 255)
        Image.fromarray(image.astype(np.uint8)).save(root / f"{i:03d}.jpg", quality=90)
        paths.append(f"{i:03d}.jpg")
    return root, pd.DataFrame({"image_id": np.arange(len(paths)), "path": paths})


def encode_images(clip_dir, photos, out, device, decode, amp):
    root, index = photos
    clip = load_clip(clip_dir, device)
    settings = extract_settings(batch_size=8, amp=amp, precision="float32", shard_rows=64,
                                decode=decode)
    extract_image_features(clip, root, index, out, name="photos", id_columns=["image_id"],
                           settings=settings, device=device, progress=False)
    return read_feature_set(out, clip.fingerprint).embeddings


def test_normalising_on_the_gpu_gives_the_cpus_bits():
    """Workers ship uint8; the device finishes them by table lookup, so the pixels the model
    sees are those the CPU computes, bit for bit."""
    _, normalize = split_preprocess(create_clip("fgvc-demo-tiny", None).preprocess)
    pixels = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(normalize(pixels.to(DEVICE)).cpu(), normalize(pixels))


DECODERS = ["torchvision", pytest.param("nvimgcodec", marks=pytest.mark.skipif(
    DEVICE != "cuda" or importlib.util.find_spec("nvidia.nvimgcodec") is None,
    reason="needs nvImageCodec (pip install -e '.[nvimgcodec]') and a CUDA GPU"))]


@pytest.mark.parametrize("decoder", DECODERS)
def test_gpu_jpeg_decoding_gives_the_features_of_pil_decoding(clip_dir, photos, tmp_path, decoder):
    """Another IDCT than libjpeg-turbo's, then Pillow's resize on the device: features within
    float16's tolerance of the PIL path's."""
    pil = encode_images(clip_dir, photos, tmp_path / "pil", "cpu", "pil", "none")
    gpu = encode_images(clip_dir, photos, tmp_path / "gpu", DEVICE, decoder, "none")
    similarity = cosines(pil, gpu)
    assert similarity.min() >= 0.999 and similarity.mean() >= 0.9995, similarity


def test_float16_autocast_extraction_matches_float32(clip_dir, photos, tmp_path):
    full = encode_images(clip_dir, photos, tmp_path / "fp32", DEVICE, "pil", "none")
    half = encode_images(clip_dir, photos, tmp_path / "fp16", DEVICE, "pil", "float16")
    assert cosines(full, half).min() >= 0.999
    texts = pd.DataFrame({"text_id": np.arange(40),
                          "text": [f"a photo of bird number {i}, small and red" for i in range(40)]})
    clip = load_clip(clip_dir, DEVICE)
    tables = {}
    for amp in ("none", "float16"):
        settings = extract_settings(batch_size=16, amp=amp, precision="float32", shard_rows=64)
        extract_text_features(clip, texts, tmp_path / f"texts-{amp}", name="texts",
                              id_columns=["text_id"], settings=settings, device=DEVICE)
        tables[amp] = read_feature_set(tmp_path / f"texts-{amp}", clip.fingerprint).embeddings
    assert cosines(tables["none"], tables["float16"]).min() >= 0.999


def small_qformer_run(device: str, compile: bool = False) -> list[dict]:
    """Six epochs of a small Q-Former learning a linear map, from seed 0."""
    config = QFormerConfig(text_width=32, image_width=32, num_queries=4, hidden_size=64,
                           num_layers=2, num_heads=4, intermediate_size=128, dropout=0.0)
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(512, 32, generator=generator)
    image = text @ torch.randn(32, 32, generator=generator)  # a linear map to learn
    torch.manual_seed(0)
    model = TextToImageQFormer(config).to(device)
    return train_qformer(
        model, PooledTexts(text[:448].to(device)), image[:448].to(device),
        val_text=PooledTexts(text[448:].to(device)), val_images=image[448:].to(device),
        val_caption_image=torch.arange(64, device=device), compile=compile, show_progress=False,
        settings=TrainQFormer(loss="pairwise_cosine", margin=0.0, weighting="balanced",
                              temperature=0.07, epochs=6, batch_size=64, lr=3e-3,
                              weight_decay=0.05, warmup_fraction=0.05, grad_clip=1.0, seed=0))


def assert_same_curves(reference: list[dict], other: list[dict]) -> None:
    assert reference[-1]["mean_matched_cosine"] > reference[0]["mean_matched_cosine"] + 0.1
    for a, b in zip(reference[1:], other[1:]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05, abs=0.01)
        assert b["mean_matched_cosine"] == pytest.approx(a["mean_matched_cosine"], abs=0.03)


def test_qformer_training_on_the_gpu_follows_the_cpu():
    """bf16 autocast and the fused optimiser on the GPU, float32 on the CPU: the same run to
    within bf16's rounding."""
    assert_same_curves(small_qformer_run("cpu"), small_qformer_run(DEVICE))


def test_compiled_qformer_training_follows_the_eager_run():
    assert_same_curves(small_qformer_run(DEVICE), small_qformer_run(DEVICE, compile=True))


def test_adapter_heads_on_the_gpu_equal_the_cpu_s():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(600, 32, generator=generator)
    labels = torch.arange(600) % 5
    features[torch.arange(600), labels] += 2.0  # separable
    pools = [np.arange(0, 600, step) for step in (1, 2, 3)]
    heads = {device: train_linear_heads(features.to(device), labels.to(device), pools, 5,
                                        steps=50, batch_size=32, lr=1e-2, weight_decay=1e-4,
                                        logit_scale=10.0, seeds=[[0], [1], [2]],
                                        show_progress=False)
             for device in ("cpu", DEVICE)}
    assert torch.allclose(heads["cpu"].weight, heads[DEVICE].weight.cpu(), atol=1e-4)
    assert torch.allclose(heads["cpu"].bias, heads[DEVICE].bias.cpu(), atol=1e-4)


@pytest.mark.e2e
@pytest.mark.skipif(importlib.util.find_spec("dvc") is None, reason="needs dvc")
def test_the_demo_on_the_gpu_reproduces_the_cpu_s_table(tmp_path):
    """`dvc repro` of the whole demo with every stage's device set to the GPU, and to the CPU:
    the same table within a few points (autocast and another order of float sums move a few of
    600 test images)."""
    metrics = {}
    for device in ("cpu", DEVICE):
        project = copy_repo(tmp_path / device)
        params = yaml.safe_load((project / "params.yaml").read_text())
        for section in params.values():
            if isinstance(section, dict) and "device" in section:
                section["device"] = device
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1",
                   PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
        result = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        metrics[device] = {stage: json.loads((project / f"artifacts/{stage}/demo-tiny/metrics.json")
                                             .read_text()) for stage in ("evaluate", "zeroshot")}
    cpu, gpu = (metrics[device]["evaluate"] for device in ("cpu", DEVICE))
    zero_shot = [metrics[device]["zeroshot"]["clip/paper"]["top1"] for device in ("cpu", DEVICE)]
    assert zero_shot[1] == pytest.approx(zero_shot[0], abs=2.0)
    assert gpu["adapter_top1"].keys() == cpu["adapter_top1"].keys()
    for run, top1 in cpu["adapter_top1"].items():
        assert gpu["adapter_top1"][run] == pytest.approx(top1, abs=5.0), run
