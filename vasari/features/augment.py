"""Augmented views of training pictures, embedded and cached (issue #14: less shortcut learning).

Why: every source has its own photography (colour balance, contrast, JPEG quality, size and
framing), and a linear head on frozen features can learn "which source" instead of "which
school". Embedding each training picture a few more times under random photometric, JPEG,
downscale and crop changes shows the heads the same label under many "photographies", so
directions that only track the source stop paying off.

``augment_image`` makes one view (deterministic for a given ``numpy`` generator);
``embed_augmented`` embeds ``views`` of them per picture with an ``Embedder``, keyed in an
``EmbeddingCache`` by (picture content, view index, config), so an interrupted run resumes and
a second run costs nothing. The views of a picture depend only on its bytes and the config,
never on the order or the batch it was embedded in.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageEnhance

from vasari.core.images import ImageError, load_image
from vasari.errors import InputError
from vasari.features.cache import safe_content_key

if TYPE_CHECKING:
    from vasari.features.cache import EmbeddingCache
    from vasari.features.embedder import Embedder

__all__ = ["AugmentConfig", "AugmentError", "augment_image", "embed_augmented", "view_rng"]

#: Part of every view's cache key: bump it when ``augment_image`` changes what a config makes.
AUGMENT_VERSION = 1
#: The colour changes; ``AugmentConfig.geometric`` sets them to zero.
PHOTOMETRIC_FIELDS = ("brightness", "contrast", "saturation", "gamma", "cast", "greyscale")


class AugmentError(InputError):
    """An augmentation setting outside its range."""


@dataclass(frozen=True)
class AugmentConfig:
    """How strong the random changes of a view are; ``strength`` scales every range at once
    (0 = identity except JPEG re-compression, 1 = the defaults below)."""

    #: Augmented views per picture (besides the original).
    views: int = 2
    strength: float = 1.0
    seed: int = 0
    #: brightness / contrast / saturation factors drawn in 1 +- these.
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    #: gamma = exp(U(-g, g)); per-channel colour-cast gain 1 +- cast.
    gamma: float = 0.3
    cast: float = 0.08
    #: JPEG re-compression quality drawn in [lo, hi].
    jpeg_quality: tuple[int, int] = (30, 90)
    #: the kept crop covers U(1 - crop, 1) of the area, log aspect jitter U(-aspect, aspect).
    crop: float = 0.4
    aspect: float = 0.25
    #: the shorter side is scaled by U(1 - downscale, 1) (never below ``min_side`` px).
    downscale: float = 0.6
    min_side: int = 96
    greyscale: float = 0.1

    def __post_init__(self) -> None:
        if self.views < 0:
            raise AugmentError(f"views must be >= 0, got {self.views}")
        if not 0.0 <= self.strength <= 1.5:
            raise AugmentError(f"strength must be in [0, 1.5], got {self.strength}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise AugmentError(f"jpeg_quality must be 1 <= lo <= hi <= 100, got {self.jpeg_quality}")
        if not 0.0 <= self.crop * self.strength < 1.0 or not 0.0 <= self.downscale * self.strength < 1.0:
            raise AugmentError("crop and downscale times strength must be in [0, 1)")

    @classmethod
    def geometric(cls, views: int, **kwargs) -> "AugmentConfig":
        """Crop, aspect, downscale and JPEG changes only: what ``vasari train --augment-views``
        uses. The colour changes cost dating in distribution (colour and varnish are period
        evidence; docs/trust-research.md, section 3b)."""
        return cls(views=views, **{name: 0.0 for name in PHOTOMETRIC_FIELDS}, **kwargs)

    def key(self) -> str:
        """A short hash of every field but ``views``: the cache key of this kind of view (more
        views of the same kind reuse the first ones)."""
        fields = {k: v for k, v in asdict(self).items() if k != "views"} | {"version": AUGMENT_VERSION}
        return hashlib.blake2b(json.dumps(fields, sort_keys=True).encode(), digest_size=6).hexdigest()


def view_rng(content: str, view: int, config: AugmentConfig) -> np.random.Generator:
    """The generator of one view: a function of the picture's content key, the view index and
    the config, so a view is the same whatever the run, order or batch."""
    digest = hashlib.blake2b(f"{content}|{view}|{config.key()}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _crop_and_scale(img: Image.Image, rng: np.random.Generator, c: AugmentConfig) -> Image.Image:
    """A random crop (area share and aspect jittered), then a random lower resolution."""
    s = c.strength
    w, h = img.size
    area = rng.uniform(1.0 - c.crop * s, 1.0) * w * h
    ratio = (w / h) * np.exp(rng.uniform(-c.aspect * s, c.aspect * s))  # jitter around the picture's own aspect
    cw = int(min(w, max(8, round(np.sqrt(area * ratio)))))
    ch = int(min(h, max(8, round(np.sqrt(area / ratio)))))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x, y, x + cw, y + ch))
    factor = rng.uniform(1.0 - c.downscale * s, 1.0)
    short = min(cw, ch)
    target = max(min(c.min_side, short), round(short * factor))
    if target < short:
        img = img.resize((max(1, round(cw * target / short)), max(1, round(ch * target / short))), Image.BILINEAR)
    return img


def _photometric(img: Image.Image, rng: np.random.Generator, c: AugmentConfig) -> Image.Image:
    """Brightness, contrast, saturation, then gamma and a colour cast in one lookup table;
    sometimes greyscale."""
    s = c.strength
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(1 - c.brightness * s, 1 + c.brightness * s))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(1 - c.contrast * s, 1 + c.contrast * s))
    img = ImageEnhance.Color(img).enhance(rng.uniform(1 - c.saturation * s, 1 + c.saturation * s))
    gamma = np.exp(rng.uniform(-c.gamma * s, c.gamma * s))
    gains = rng.uniform(1 - c.cast * s, 1 + c.cast * s, size=3)
    ramp = (np.arange(256) / 255.0) ** gamma
    lut = np.concatenate([np.clip(np.round(255.0 * ramp * g), 0, 255) for g in gains]).astype(np.uint8)
    img = img.point(lut.tolist())
    if rng.random() < c.greyscale * s:
        img = img.convert("L").convert("RGB")
    return img


def augment_image(img: Image.Image, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> Image.Image:
    """One augmented RGB view of ``img``: crop + downscale, photometric changes, then JPEG
    re-compression at a random quality (the last step, as a collection's export would be)."""
    img = img.convert("RGB") if img.mode != "RGB" else img
    img = _photometric(_crop_and_scale(img, rng, config), rng, config)
    lo, hi = config.jpeg_quality
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(lo, hi + 1)))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _views_of(embedder: "Embedder", path: str, content: str, views: Sequence[int],
              config: AugmentConfig) -> np.ndarray | None:
    """The network input of the requested views of one picture, or None if it cannot be read."""
    try:
        img = load_image(path, min_side=embedder.spec.draft_min_side)
    except (ImageError, OSError):
        return None
    return np.stack([embedder.prepare_views(augment_image(img, view_rng(content, v, config), config))
                     for v in views])


def embed_augmented(embedder: "Embedder", paths: Sequence[str | Path], config: AugmentConfig = AugmentConfig(),
                    cache: "EmbeddingCache | None" = None, batch_size: int = 16, progress: bool = True) -> np.ndarray:
    """``(N, config.views, dim)`` float32 features of the augmented views of each picture
    (NaN where a picture cannot be read). Cached vectors are reused; new ones are added to
    ``cache`` as they are computed, so an interrupted run resumes where it stopped."""
    from vasari.core.progress import make_progress

    paths = [str(p) for p in paths]
    out = np.full((len(paths), config.views, embedder.dim), np.nan, dtype=np.float32)
    if config.views == 0 or not paths:
        return out
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="vasari-augment") as pool:
        contents = list(pool.map(safe_content_key, paths))
        keys = [[f"aug-{config.key()}-{c}-{v}" for v in range(config.views)] for c in contents]
        cached = cache.get_many([k for row in keys for k in row]) if cache is not None else {}
        todo = []
        for i, row in enumerate(keys):
            for v, key in enumerate(row):
                if key in cached:
                    out[i, v] = cached[key]
            missing = [v for v, key in enumerate(row) if key not in cached]
            if missing and not contents[i].startswith("!"):
                todo.append((i, missing))
        with make_progress(transient=False) as bar:
            task = bar.add_task("augmented views", total=len(todo), visible=progress)
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                arrays = list(pool.map(lambda item: _views_of(embedder, paths[item[0]], contents[item[0]], item[1],
                                                              config), chunk))
                _embed_chunk(embedder, chunk, arrays, keys, out, cache)
                bar.advance(task, len(chunk))
    if cache is not None:
        cache.flush()
    return out


def _embed_chunk(embedder: "Embedder", chunk, arrays, keys, out: np.ndarray, cache: "EmbeddingCache | None") -> None:
    """One network call for every view of a chunk of pictures; results into ``out`` and ``cache``."""
    done = [(i, views, a) for (i, views), a in zip(chunk, arrays) if a is not None]
    if not done:
        return
    batch = np.concatenate([a for _, _, a in done])
    vecs = embedder.forward_views(batch)
    row = 0
    put_keys = []
    for i, views, _ in done:
        for v in views:
            out[i, v] = vecs[row]
            put_keys.append(keys[i][v])
            row += 1
    if cache is not None:
        cache.put(put_keys, vecs)


def views_of_rows(embedder: "Embedder", paths: Sequence[str], chosen: np.ndarray, views: int,
                  cache: "EmbeddingCache | None" = None, progress: bool = False) -> np.ndarray:
    """``(N, views, D)``: the geometric + JPEG views (``AugmentConfig.geometric``) of the
    pictures of the ``chosen`` rows (a boolean mask over ``paths``), NaN for the other rows.
    Aligned with the rows' own features, so every refit (the bundle's heads, the out-of-source
    thresholds, the protocols' folds) takes the views of exactly its own train rows. Only a
    backbone ``Embedder`` makes them: a fine-tuned or precomputed extractor has no views that
    match the bundle's."""
    from vasari.features.embedder import Embedder

    if not isinstance(embedder, Embedder):
        raise AugmentError(f"augmented views need a backbone Embedder, not {type(embedder).__name__} "
                           "(a fine-tuned or precomputed extractor)")
    rows = np.flatnonzero(chosen)
    got = embed_augmented(embedder, [paths[i] for i in rows], AugmentConfig.geometric(views), cache=cache,
                          progress=progress)
    out = np.full((len(paths), *got.shape[1:]), np.nan, np.float32)
    out[rows] = got
    return out

