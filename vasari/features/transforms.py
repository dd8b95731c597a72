"""Pixels -> network input arrays beyond ``Preprocess`` (the centre crop that travels with each
backbone spec): the five test-time crops of the "multicrop" views and the upright RGB conversion
of pictures handed over as PIL images."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def multicrops(img: Image.Image, side: int, size: int) -> np.ndarray:
    """Four corner and one centre ``size`` x ``size`` crops of an RGB picture resized (bicubic)
    so that its shorter side is ``side``: ``(5, size, size, 3)`` uint8. At ``side = 2 * size``
    each crop sees a quarter of the picture at twice the centre crop's resolution."""
    w, h = img.size
    scale = side / min(w, h)
    img = img.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BICUBIC)
    a = np.asarray(img)
    H, W = a.shape[:2]
    boxes = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]
    return np.stack([a[y:y + size, x:x + size] for y, x in boxes])


def upright_rgb(img: Image.Image) -> Image.Image:
    """A PIL picture turned by its EXIF orientation (when readable) and converted to RGB: what
    ``Embedder.load`` does to decoded files, for pictures given as PIL images."""
    from vasari.core.images import _to_rgb

    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass
    return _to_rgb(img)
