"""The sanity check of an explanation method: pictures whose label is drawn in one quadrant.

Each generated picture is a grey, textured background (random stripes and noise: no colour
anywhere) with one saturated square in one quadrant of the region the model sees; the
square's hue decides the label. A head trained on such pictures can only read the square,
so a faithful explanation puts its mass in that quadrant. ``benchmarks/explain.py`` reports
the share and ``tests/test_explain.py`` asserts it (issue 16: >= 70%).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: label -> hue of its square (the "type" task's labels, so the bundle is an ordinary one)
HUES = {"landscape": 0.33, "portrait": 0.0, "still-life": 0.62}
#: the label of pictures without a square: without it a head may learn one colour as "neither
#: of the others", and hiding that square would rightly change nothing
PLAIN = "genre"
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
#: side of the generated pictures: 260 px model input / 0.89 crop (the default preprocessing)
SIDE = 292


def quadrant_picture(rng: np.random.Generator, label: str, quadrant: str, side: int = SIDE) -> Image.Image:
    """A grey textured picture with a ``label``-coloured square inside ``quadrant`` of its
    centre crop, kept a sixth of the crop away from the midlines (so that its quadrant is
    unambiguous at any grid); no square for ``PLAIN``."""
    yy, xx = np.mgrid[0:side, 0:side]
    freq, angle = rng.uniform(0.05, 0.3), rng.uniform(0, np.pi)
    stripes = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    grey = rng.uniform(0.35, 0.65) * (0.75 + 0.25 * stripes)
    pixels = np.repeat(grey[..., None], 3, axis=2) + rng.normal(0, 0.04, (side, side, 1))
    crop = side * 0.89
    margin = (side - crop) / 2
    half, square = crop / 2, int(crop * 0.22)
    room = int(half - crop / 6 - square)
    y0 = int(margin + (0 if quadrant.startswith("top") else half + crop / 6)) + int(rng.integers(0, max(1, room)))
    x0 = int(margin + (0 if quadrant.endswith("left") else half + crop / 6)) + int(rng.integers(0, max(1, room)))
    if label == PLAIN:
        return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    hue = (HUES[label] + rng.uniform(-0.03, 0.03)) % 1.0
    colour = colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.7, 1.0))
    pixels[y0:y0 + square, x0:x0 + square] = colour
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def quadrant_share(grid: np.ndarray, quadrant: str) -> float:
    """The share of a map's mass inside ``quadrant`` (cells straddling a midline of an odd
    grid count by the part of them inside)."""
    grid = np.asarray(grid, dtype=np.float64)
    n = grid.shape[0]
    upper = np.clip(n / 2 - np.arange(n), 0.0, 1.0)  # share of each row (column) in the first half
    rows = upper if quadrant.startswith("top") else 1.0 - upper
    cols = upper if quadrant.endswith("left") else 1.0 - upper
    total = grid.sum()
    return float(rows @ grid @ cols / total) if total > 0 else 0.0


@dataclass
class QuadrantSet:
    """Generated pictures with their label and the quadrant holding it."""

    images: list[Image.Image]
    labels: list[str]
    quadrants: list[str]


def quadrant_set(per_label: int, seed: int, plain: bool = True) -> QuadrantSet:
    """``per_label`` pictures of each label (and of ``PLAIN`` ones), quadrants in turn."""
    rng = np.random.default_rng(seed)
    out = QuadrantSet([], [], [])
    for label in [*HUES, PLAIN] if plain else HUES:
        for i in range(per_label):
            quadrant = QUADRANTS[(i + len(out.images)) % len(QUADRANTS)]
            out.images.append(quadrant_picture(rng, label, quadrant))
            out.labels.append(label)
            out.quadrants.append(quadrant)
    return out


def train_quadrant_bundle(embedder, out: Path, per_label: int = 16, seed: int = 0) -> Path:
    """A bundle whose "type" head reads the square's colour (trained on ``quadrant_set``
    pictures embedded by ``embedder``), saved to ``out``."""
    from vasari.bundle import Bundle, save_bundle
    from vasari.heads.train import HeadConfig, train_heads

    train, val = quadrant_set(per_label, seed), quadrant_set(max(4, per_label // 2), seed + 1)
    X_train, X_val = embedder.embed_images(train.images), embedder.embed_images(val.images)
    heads = train_heads(X_train, {"type": train.labels}, None, X_val, {"type": val.labels}, None,
                        HeadConfig(min_kept=3))
    card = {"name": "quadrant sanity", "data": {"generated": len(train.images) + len(val.images)}}
    return save_bundle(Bundle(heads, embedder.spec, card, {}), out)


def quadrant_shares(explainer, pictures: QuadrantSet) -> list[float]:
    """Per picture, the share of the explanation of its answer that lies in its quadrant
    (the answer, or its top class when it is "unknown": the square is all there is to see)."""
    shares = []
    for image, label, quadrant in zip(pictures.images, pictures.labels, pictures.quadrants):
        explanation = explainer.explain(image, ["type"])[0]
        shares.append(quadrant_share(np.asarray(explanation.grid), quadrant))
    return shares
