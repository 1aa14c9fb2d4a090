"""Every kind of bad image a real collection holds: converted to RGB where possible, else a reason."""

import numpy as np
import pytest
from PIL import Image

from pipeline.features.decoding import BadImage, load_rgb


def photo(width=80, height=60, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_plain_jpeg_is_returned_as_rgb(tmp_path):
    photo().save(tmp_path / "a.jpg", quality=95)
    image = load_rgb(tmp_path / "a.jpg")
    assert image.mode == "RGB" and image.size == (80, 60)


def test_cmyk_jpeg_is_converted(tmp_path):
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    image = load_rgb(tmp_path / "cmyk.jpg")
    assert image.mode == "RGB"
    red, green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def test_grayscale_is_converted(tmp_path):
    Image.new("L", (40, 30), 77).save(tmp_path / "gray.png")
    assert np.all(np.asarray(load_rgb(tmp_path / "gray.png")) == 77)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    pixels = np.asarray(load_rgb(tmp_path / "deep.png"))
    assert pixels.shape == (4, 3, 3)
    np.testing.assert_array_equal(pixels[0, :, 0], [0, 128, 255])  # Pillow alone gives 0, 255, 255


def test_dark_16_bit_png_stays_dark(tmp_path):
    # the scale is the format's, not the image's own maximum
    Image.fromarray(np.full((4, 4), 255, dtype=np.uint16)).save(tmp_path / "dark.png")
    assert np.all(np.asarray(load_rgb(tmp_path / "dark.png")) == 1)


def test_palette_with_transparency_is_converted(tmp_path):
    Image.new("RGBA", (20, 20), (10, 200, 30, 128)).convert("P").save(tmp_path / "p.png")
    assert load_rgb(tmp_path / "p.png").mode == "RGB"


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path):
    photo(2400, 1600).save(tmp_path / "huge.jpg")
    image = load_rgb(tmp_path / "huge.jpg", max_pixels=400_000)
    assert image.mode == "RGB"
    # JPEG draft decodes at 1/2 scale (the largest DCT scale that keeps the size asked for),
    # not at the full 3.8 MP
    assert image.size == (1200, 800)


def test_huge_png_is_refused(tmp_path):
    photo(1200, 900).save(tmp_path / "huge.png")
    with pytest.raises(BadImage, match=r"too large: 1200x900 pixels"):
        load_rgb(tmp_path / "huge.png", max_pixels=400_000)


@pytest.mark.parametrize("name,content,reason", [
    ("empty.jpg", b"", "empty file"),
    ("page.jpg", b"<html><body>404 Not Found</body></html>", "not an image"),
])
def test_unreadable_files_give_a_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadImage, match=reason):
        load_rgb(tmp_path / name)


def test_truncated_jpeg_is_refused(tmp_path):
    photo(200, 150).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="truncated"):
        load_rgb(tmp_path / "cut.jpg")


def test_missing_file_gives_a_reason(tmp_path):
    with pytest.raises(BadImage, match="missing file"):
        load_rgb(tmp_path / "nowhere.jpg")
