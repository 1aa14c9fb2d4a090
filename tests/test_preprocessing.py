"""CLIP preprocessing cut at 8-bit pixels, and Pillow's resize as batched matrices (the device
decoders' resize), checked against Pillow and open_clip's own transform."""

import numpy as np
import pytest
import torch
from conftest import extract_settings
from PIL import Image

import pipeline.features.preprocessing as preprocessing
from pipeline.clip.loading import create_clip
from pipeline.common import InputError
from pipeline.features.images import BatchFinisher, image_loader
from pipeline.features.preprocessing import DevicePreprocess, split_preprocess
from pipeline.features.resampling import (axis_weights, center_crop_start, resize_weights,
                                           shortest_side_size)

SIZES = [(480, 640), (640, 480), (375, 500), (333, 500), (427, 640), (64, 96), (50, 40), (224, 300)]


def photo(height: int, width: int, seed: int) -> Image.Image:
    """Smooth colour waves plus noise: edges and flat parts, like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    waves = np.stack([np.sin(9 * x + 5 * y + p) for p in rng.uniform(0, 6, 3)], axis=-1)
    pixels = (waves + 1) * 127.5 + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


@pytest.fixture(scope="module")
def vit():
    return create_clip("ViT-B-32", None)


def pillow_by_matrices(image: Image.Image, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    pixels = np.asarray(image).astype(np.float64).transpose(2, 0, 1)
    once = np.clip(np.floor(pixels @ columns.T + 0.5), 0, 255)  # horizontal pass, 8 bits
    return np.clip(np.floor(rows @ once + 0.5), 0, 255).transpose(1, 2, 0)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name,pillow", [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)])
def test_the_matrices_are_pillows_resize_and_crop_exactly(size, name, pillow):
    """CLIP's resizes of COCO/CUB-like sizes: the shorter side to 224 then a centered crop, and
    a squash to 224 x 224, bit for bit (float64)."""
    height, width = size
    image = photo(height, width, seed=height)
    resized_h, resized_w = shortest_side_size(height, width, 224)
    top, left = center_crop_start(resized_h, 224), center_crop_start(resized_w, 224)
    expected = np.asarray(image.resize((resized_w, resized_h), pillow))[top:top + 224,
                                                                         left:left + 224]
    ours = pillow_by_matrices(image, axis_weights(height, resized_h, 224, name),
                              axis_weights(width, resized_w, 224, name))
    np.testing.assert_array_equal(ours, expected)
    squashed = pillow_by_matrices(image, resize_weights(height, 224, name),
                                  resize_weights(width, 224, name))
    np.testing.assert_array_equal(squashed, np.asarray(image.resize((224, 224), pillow)))


def test_any_resize_is_pillows_within_a_few_levels():
    """Pillow 13 runs the vertical pass first for some shrinking resizes; rounding between the
    passes then moves a minority of pixels by a few levels."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        height, width, out_h, out_w = (int(v) for v in rng.integers(20, 400, 4))
        image = photo(height, width, seed=trial)
        ours = pillow_by_matrices(image, resize_weights(height, out_h), resize_weights(width, out_w))
        expected = np.asarray(image.resize((out_w, out_h), Image.BICUBIC)).astype(np.float64)
        assert np.abs(ours - expected).max() <= 4
        assert np.abs(ours - expected).mean() <= 0.5


def test_workers_pixels_normalised_later_are_open_clips_transform_bit_for_bit(vit):
    to_pixels, normalize = split_preprocess(vit.preprocess)
    for height, width in SIZES[:3]:
        image = photo(height, width, seed=1)
        pixels = to_pixels(image)
        assert pixels.dtype == torch.uint8 and pixels.shape == (3, 224, 224)
        assert torch.equal(normalize(pixels[None])[0], vit.preprocess(image))


def test_a_transform_of_another_shape_is_kept_whole():
    def whole(image):
        return torch.ones(3, 2, 2)
    to_pixels, normalize = split_preprocess(whole)
    assert to_pixels is whole
    assert torch.equal(normalize(whole(None)[None]), torch.ones(1, 3, 2, 2))


def test_device_preprocessing_of_mixed_sizes_is_the_pil_path_within_one_level(vit, monkeypatch):
    images = [photo(h, w, seed=i) for i, (h, w) in enumerate(SIZES * 2)]
    to_pixels, normalize = split_preprocess(vit.preprocess)
    expected = torch.stack([to_pixels(image) for image in images]).float()
    prepare = DevicePreprocess(vit.card["preprocess"], "cpu")
    levels = prepare.normalize.std * 255.0  # one 8-bit level, in normalised units
    batched = prepare([as_tensor(image) for image in images])
    assert batched.shape == (len(images), 3, 224, 224)
    difference = (batched - normalize(expected)).abs() / levels
    assert difference.max() <= 1.0 + 1e-4  # float32 products, Pillow's fixed point
    assert (difference > 0.5).float().mean() < 1e-3  # ... on a few pixels only
    # Small chunks (a padded chunk per image or two) give the same batch, in the same order.
    monkeypatch.setattr(preprocessing, "PAD_BUDGET", 3 * 500 * 500)
    torch.testing.assert_close(prepare([as_tensor(image) for image in images]), batched,
                               rtol=0, atol=1e-6)


def test_device_preprocessing_squashes_when_the_model_says_so(vit):
    config = dict(vit.card["preprocess"], resize_mode="squash")
    image = photo(375, 500, seed=3)
    batched = DevicePreprocess(config, "cpu")([as_tensor(image)])
    expected = as_tensor(image.resize((224, 224), Image.BICUBIC)).float()
    _, normalize = split_preprocess(vit.preprocess)
    levels = normalize.std * 255.0
    assert ((batched[0] - normalize(expected[None])[0]).abs() / levels).max() <= 1.0 + 1e-4


@pytest.mark.parametrize("change,message", [
    ({"resize_mode": "longest"}, "resize modes"),
    ({"interpolation": "lanczos"}, "interpolation 'lanczos'")])
def test_device_preprocessing_refuses_what_it_cannot_reproduce(vit, change, message):
    with pytest.raises(InputError, match=message):
        DevicePreprocess(dict(vit.card["preprocess"], **change), "cpu")


def test_workers_ship_uint8_pixels_and_one_block_of_jpeg_bytes(tmp_path):
    clip = create_clip("fgvc-demo-tiny", None)
    paths = []
    for i, (height, width) in enumerate(SIZES[:4]):
        photo(height, width, seed=i).save(tmp_path / f"{i}.jpg", quality=90)
        paths.append(f"{i}.jpg")
    photo(80, 90, seed=9).save(tmp_path / "p.png")  # not a JPEG: PIL decodes it in the worker
    paths.append("p.png")
    batches = [list(range(len(paths)))]
    pil = next(iter(image_loader(clip, tmp_path, paths, batches,
                                 extract_settings(num_workers=1), "cpu")))
    assert pil.pixels.dtype == torch.uint8 and pil.pixels.shape == (5, 3, 64, 64)
    assert pil.jpeg_bytes is None and pil.jpegs() == []
    raw = next(iter(image_loader(clip, tmp_path, paths, batches,
                                 extract_settings(num_workers=1, decode="torchvision"), "cpu")))
    assert raw.rows.tolist() == [4] and raw.jpeg_rows == [0, 1, 2, 3]
    assert [bytes(b.numpy()) for b in raw.jpegs()] == [(tmp_path / p).read_bytes()
                                                        for p in paths[:4]]


def test_rows_that_the_device_cannot_decode_keep_their_own_pixels(tmp_path):
    """A JPEG the device decoder refuses goes through PIL in the main process; every row of the
    finished batch still carries its own image's pixels."""
    clip = create_clip("fgvc-demo-tiny", None)
    paths = []
    for i, (height, width) in enumerate(SIZES[:5]):
        photo(height, width, seed=i).save(tmp_path / f"{i}.jpg", quality=90)
        paths.append(f"{i}.jpg")
    photo(70, 90, seed=7).save(tmp_path / "p.png")  # decoded by PIL in the worker
    paths.insert(2, "p.png")
    settings = extract_settings(decode="torchvision")
    loaded = next(iter(image_loader(clip, tmp_path, paths, [list(range(len(paths)))], settings,
                                    "cpu")))
    finish = BatchFinisher(clip, tmp_path, paths, settings, "cpu")
    decode = finish.decode
    finish.decode = lambda data: [None if i == 1 else image for i, image in enumerate(decode(data))]
    rows, pixels, bad = finish(loaded)
    assert bad == [] and sorted(rows.tolist()) == list(range(len(paths)))
    to_pixels, normalize = split_preprocess(clip.preprocess)
    levels = normalize.std * 255.0
    for row, finished in zip(rows.tolist(), pixels):
        expected = normalize(to_pixels(Image.open(tmp_path / paths[row]).convert("RGB"))[None])[0]
        assert ((finished - expected).abs() / levels).max() <= 1.0 + 1e-4, paths[row]
    refused = rows.tolist().index(paths.index("1.jpg"))  # the second JPEG, through PIL here
    assert torch.equal(pixels[refused], normalize(to_pixels(
        Image.open(tmp_path / "1.jpg").convert("RGB"))[None])[0])
