"""Draw one bird picture from its attributes, with the per-image variation a photo has.

Pose (position, scale, tilt, facing), background scene, colour cast and sensor noise vary per
image; the attributes decide what a viewer (and CLIP) can tell species apart by.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.data.bird_attributes import COLOURS

SCENES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # scene name: (top colour, bottom colour) of a vertical gradient
    "sky": ((150, 195, 235), (215, 230, 245)),
    "forest": ((60, 95, 55), (115, 140, 80)),
    "beach": ((175, 205, 225), (220, 200, 155)),
    "water": ((70, 110, 150), (40, 70, 110)),
    "snow": ((200, 205, 215), (245, 245, 250)),
}
SIZE_SCALE = {"small": 0.72, "medium": 0.86, "large": 1.0}


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: float) -> tuple:
    return tuple(int(np.clip(c + rng.normal(0.0, amount), 0, 255)) for c in colour)


def _background(size: int, scene: str, rng: np.random.Generator) -> Image.Image:
    top, bottom = (np.asarray(_jitter(c, rng, 10.0), dtype=np.float32) for c in SCENES[scene])
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    pixels = np.broadcast_to(top * (1 - t) + bottom * t, (size, size, 3)).copy()
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _bill_polygon(kind: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Bill outline for a head of radius r whose front point is (x, y), facing right."""
    if kind == "cone":
        return [(x - 0.2 * r, y - 0.45 * r), (x + 0.8 * r, y), (x - 0.2 * r, y + 0.45 * r)]
    if kind == "hooked":
        return [(x - 0.2 * r, y - 0.35 * r), (x + 0.7 * r, y - 0.2 * r), (x + 0.85 * r, y + 0.35 * r),
                (x + 0.55 * r, y + 0.05 * r), (x - 0.2 * r, y + 0.3 * r)]
    if kind == "long":
        return [(x - 0.1 * r, y - 0.18 * r), (x + 2.1 * r, y + 0.2 * r), (x - 0.1 * r, y + 0.18 * r)]
    return [(x - 0.1 * r, y - 0.16 * r), (x + 0.45 * r, y), (x - 0.1 * r, y + 0.16 * r)]  # short


def _bird_layer(size: int, attrs: dict[str, str], rng: np.random.Generator) -> Image.Image:
    """The bird alone, facing right, on a transparent layer."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    s = size * SIZE_SCALE[attrs["size"]] * rng.uniform(0.9, 1.08)
    cx = size * 0.5 + rng.uniform(-0.08, 0.08) * size
    cy = size * 0.55 + rng.uniform(-0.06, 0.06) * size
    body = _jitter(COLOURS[attrs["body"]], rng, 12.0)
    wing = _jitter(COLOURS[attrs["wing"]], rng, 12.0)
    head = _jitter(COLOURS[attrs["head"]], rng, 12.0)
    bw, bh = 0.25 * s, 0.15 * s  # body half-width, half-height
    # tail, legs, body
    draw.polygon([(cx - bw * 0.8, cy - bh * 0.2), (cx - bw * 1.75, cy - bh * 0.7),
                  (cx - bw * 1.65, cy + bh * 0.25)], fill=wing)
    for dx in (-0.15, 0.15):
        draw.line([(cx + dx * bw, cy + bh * 0.8), (cx + dx * bw, cy + bh * 1.9)], fill=(60, 45, 30),
                  width=max(1, int(s * 0.02)))
    draw.ellipse([cx - bw, cy - bh, cx + bw, cy + bh], fill=body)
    pattern_ink = tuple(int(c * 0.45) for c in body) if sum(body) > 150 else (200, 200, 200)
    if attrs["pattern"] == "striped":
        for k in range(-2, 3):
            x = cx + k * bw * 0.28
            draw.line([(x, cy - bh * 0.35), (x - bw * 0.12, cy + bh * 0.85)], fill=pattern_ink,
                      width=max(1, int(s * 0.025)))
    elif attrs["pattern"] == "spotted":
        for _ in range(7):
            sx = cx + rng.uniform(-0.6, 0.7) * bw
            sy = cy + rng.uniform(0.0, 0.7) * bh
            r = s * 0.022
            draw.ellipse([sx - r, sy - r, sx + r, sy + r], fill=pattern_ink)
    # wing: a teardrop over the body's back
    draw.polygon([(cx + bw * 0.45, cy - bh * 0.55), (cx - bw * 0.2, cy - bh * 0.95),
                  (cx - bw * 1.2, cy - bh * 0.1), (cx - bw * 0.1, cy + bh * 0.35)], fill=wing)
    # head, eye, bill
    hr = 0.1 * s
    hx, hy = cx + bw * 0.95, cy - bh * 0.95
    draw.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=head)
    er = max(1.0, hr * 0.2)
    draw.ellipse([hx + hr * 0.25 - er, hy - hr * 0.2 - er, hx + hr * 0.25 + er, hy - hr * 0.2 + er],
                 fill=(10, 10, 10))
    draw.polygon(_bill_polygon(attrs["bill"], hx + hr * 0.85, hy + hr * 0.1, hr), fill=(70, 60, 50))
    return layer


def draw_bird(attrs: dict[str, str], scene: str, size: int, rng: np.random.Generator) -> Image.Image:
    """Render one RGB picture of a bird with these attributes in this scene."""
    canvas = _background(size, scene, rng)
    bird = _bird_layer(size, attrs, rng)
    if rng.random() < 0.5:
        bird = bird.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    bird = bird.rotate(rng.uniform(-18.0, 18.0), resample=Image.Resampling.BILINEAR)
    canvas.paste(bird, (0, 0), bird)
    if rng.random() < 0.3:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    pixels = np.asarray(canvas, dtype=np.float32)
    pixels = pixels * rng.uniform(0.8, 1.15) + rng.normal(0.0, 6.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
