"""The explanation as a picture a visitor can read: the heat map blended over the region the
model sees, the rest of the picture dimmed (the model never saw it), a title naming the task
and the label, and a colour legend."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vasari.explain.schema import Explanation

#: longest side of the rendered picture (the title bar and legend come on top)
MAX_SIDE = 512
TITLE_HEIGHT = 44
LEGEND_HEIGHT = 26
#: strongest opacity of the heat colours (the picture stays visible under the hottest cell)
MAX_ALPHA = 0.65


@lru_cache(maxsize=1)
def colour_table() -> np.ndarray:
    """(256, 3) float colours of matplotlib's "inferno" map (dark = little, yellow = most)."""
    import matplotlib

    return np.asarray(matplotlib.colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3])


def heat_layer(grid: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Colours (h, w, 3) and opacities (h, w, 1) of a cell map scaled to its hottest cell and
    smoothed (bicubic) to ``width`` x ``height`` pixels."""
    top = float(grid.max())
    scaled = grid / top if top > 0 else np.zeros_like(grid)
    level = Image.fromarray((scaled * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    index = np.asarray(level)
    alpha = (0.15 + (MAX_ALPHA - 0.15) * index / 255.0)[..., None] if top > 0 else np.zeros((height, width, 1))
    return colour_table()[index] * 255.0, alpha


def _blend(picture: Image.Image, explanation: Explanation) -> Image.Image:
    """The picture (at most ``MAX_SIDE``), dimmed outside the crop box, heat blended inside it."""
    scale = min(1.0, MAX_SIDE / max(picture.size))
    shown = picture.convert("RGB").resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                          Image.Resampling.BILINEAR)
    pixels = np.asarray(shown, dtype=np.float64) * 0.45
    left, top, right, bottom = (round(v * scale) for v in explanation.crop_box)
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    inside = np.asarray(shown, dtype=np.float64)[top:bottom, left:right]
    colours, alpha = heat_layer(np.asarray(explanation.grid), right - left, bottom - top)
    pixels[top:bottom, left:right] = inside * (1 - alpha) + colours * alpha
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_overlay(picture: Image.Image, explanation: Explanation) -> Image.Image:
    """The overlay picture: title, picture with the heat map, legend."""
    body = _blend(picture, explanation)
    width = max(body.width, 320)
    canvas = Image.new("RGB", (width, TITLE_HEIGHT + body.height + LEGEND_HEIGHT), (20, 20, 24))
    canvas.paste(body, ((width - body.width) // 2, TITLE_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    shown = explanation.label if explanation.answered else f"{explanation.label} (answer: {explanation.verdict})"
    draw.text((8, 5), f"Why {explanation.task}: {shown}?", fill=(245, 245, 245), font=_font(16))
    draw.text((8, 25), f"p = {explanation.probability:.2f} · occlusion {explanation.grid_size}x{explanation.grid_size}",
              fill=(190, 190, 190), font=_font(12))
    legend_top = TITLE_HEIGHT + body.height + 7
    bar = (colour_table()[np.linspace(0, 255, 120).astype(int)] * 255).astype(np.uint8)
    canvas.paste(Image.fromarray(np.repeat(bar[None], 12, axis=0)), (60, legend_top))
    draw.text((8, legend_top - 1), "less", fill=(190, 190, 190), font=_font(12))
    draw.text((186, legend_top - 1), "more weight in the answer", fill=(190, 190, 190), font=_font(12))
    return canvas


def overlay_png(picture: Image.Image, explanation: Explanation) -> bytes:
    """``render_overlay`` as PNG bytes."""
    out = io.BytesIO()
    render_overlay(picture, explanation).save(out, format="PNG", optimize=False)
    return out.getvalue()
