"""Decode whatever image files a dataset holds into 8-bit RGB, or say exactly why not.

Real collections hold CMYK and grayscale JPEGs, 16-bit PNGs, palette images with alpha, files cut
short by a failed download, HTML error pages saved as `.jpg`, and the odd 20,000-pixel scan. Every
convertible image is converted (as open_clip's own preprocessing does, with `convert("RGB")`);
everything else raises `BadImage` with a reason the extraction stage lists in its errors table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# We enforce our own limit (`max_pixels` below, with JPEG draft decoding for big ones) instead of
# Pillow's decompression-bomb check, which would refuse a big JPEG we can decode cheaply.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 100_000_000
HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class BadImage(ValueError):
    """An image file that cannot be turned into RGB pixels; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load_rgb(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open `path` as a fully decoded 8-bit RGB image, or raise `BadImage`.

    Images over `max_pixels` are decoded at a reduced scale when the format allows it (JPEG
    draft mode: 1/2, 1/4 or 1/8 of the size, far cheaper than a full decode) and refused
    otherwise; CLIP sees a few hundred pixels a side anyway."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadImage("missing file") from None
    except OSError as error:
        raise BadImage(f"cannot stat file: {error.strerror or error}") from None
    if size == 0:
        raise BadImage("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            _reduce_if_huge(image, max_pixels)
            image.load()
            return _to_rgb(image)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        message = str(error) or type(error).__name__
        if "truncated" in message:
            raise BadImage(f"truncated file ({size} bytes): {message}") from None
        raise BadImage(f"corrupt image: {message}") from None


def _reduce_if_huge(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height <= max_pixels:
        return
    if image.format == "JPEG":
        scale = (width * height / max_pixels) ** 0.5
        image.draft("RGB", (int(width / scale) + 1, int(height / scale) + 1))
        if image.size[0] * image.size[1] <= max_pixels * 4:  # within one draft step of the limit
            return
    raise BadImage(f"too large: {width}x{height} pixels (limit extract.images.max_image_pixels = "
                   f"{max_pixels:,})")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in HIGH_BIT_MODES:
        # 16-bit grayscale: Pillow's convert() would clip to 255 and turn most pixels white.
        # Scale the 16-bit range to 8 bits, whatever this image's own maximum. A 16-bit PNG may
        # open as "I" (PNG holds at most 16 bits); other "I"/"F" images (TIFF) carry no range:
        # taken as 8-bit unless a value says otherwise.
        pixels = np.asarray(image, dtype=np.float64)
        sixteen_bit = image.mode.startswith("I;16") or image.format == "PNG"
        if sixteen_bit or pixels.max(initial=0) > 255:
            pixels = pixels / 257.0
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow's advice: through RGBA, not straight to RGB
    return image if image.mode == "RGB" else image.convert("RGB")
