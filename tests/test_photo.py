"""Museum photos: the painting finder on generated wall scenes and on real gallery photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vasari.inference.photo import PhotoConfig, PhotoCrop, find_painting, order_corners


def _texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A painting-like picture: smooth colour fields plus a few strokes and shapes."""
    small = rng.uniform(0, 255, size=(max(2, h // 40), max(2, w // 40), 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            cv2.line(img, p1, p2, colour, int(rng.integers(1, 6)))
        else:
            axes = (int(rng.integers(5, w // 5)), int(rng.integers(5, h // 5)))
            cv2.ellipse(img, p1, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return cv2.GaussianBlur(img, (3, 3), 0)


def _framed(rng: np.random.Generator, w: int, h: int, frame: int) -> np.ndarray:
    """A painting inside a gilt frame with a bevel and some ornament noise."""
    gold = np.array([176, 140, 60], np.float32) + rng.uniform(-25, 25, 3)
    fw, fh = w + 2 * frame, h + 2 * frame
    out = np.empty((fh, fw, 3), np.float32)
    out[:] = gold
    out += rng.normal(0, 12, size=out.shape)
    yy, xx = np.mgrid[0:fh, 0:fw]
    dist = np.minimum.reduce([xx, yy, fw - 1 - xx, fh - 1 - yy]).astype(np.float32)
    out *= (0.75 + 0.35 * np.clip(dist / frame, 0, 1))[..., None]  # bevel shading
    out = np.clip(out, 0, 255).astype(np.uint8)
    out[frame:frame + h, frame:frame + w] = _texture(rng, w, h)
    return out


def make_wall_scene(seed: int, frame_frac: float = 0.07, noisy: bool = True) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """A framed painting on a wall seen in perspective: (photo, outer corners, canvas corners)."""
    rng = np.random.default_rng(seed)
    W, H = int(rng.integers(700, 1000)), int(rng.integers(600, 900))
    wall_colour = rng.uniform(60, 220, 3)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    shade = 1.0 + 0.15 * (xx / W - 0.5) * rng.uniform(-1, 1) + 0.1 * (yy / H - 0.5) * rng.uniform(-1, 1)
    wall = wall_colour[None, None, :] * shade[..., None]
    if noisy:
        wall = wall + rng.normal(0, 5, size=wall.shape)
    wall = np.clip(wall, 0, 255).astype(np.uint8)

    aspect = rng.uniform(0.6, 1.6)
    pw = int(rng.uniform(0.3, 0.5) * W)
    ph = int(min(pw / aspect, 0.55 * H))
    frame = max(4, int(frame_frac * min(pw, ph)))
    art = _framed(rng, pw, ph, frame)
    fh, fw = art.shape[:2]

    # place it, then tilt it: one side nearer the camera (yaw) and a little jitter per corner
    cx, cy = W * rng.uniform(0.4, 0.6), H * rng.uniform(0.4, 0.6)
    half = np.array([fw, fh], np.float32) / 2
    dst = np.array([[cx - half[0], cy - half[1]], [cx + half[0], cy - half[1]],
                    [cx + half[0], cy + half[1]], [cx - half[0], cy + half[1]]], np.float32)
    squeeze = rng.uniform(0.0, 0.12) * fh
    if rng.random() < 0.5:
        dst[1, 1] += squeeze / 2
        dst[2, 1] -= squeeze / 2
    else:
        dst[0, 1] += squeeze / 2
        dst[3, 1] -= squeeze / 2
    dst += rng.uniform(-0.02, 0.02, size=dst.shape).astype(np.float32) * np.array([fw, fh], np.float32)

    src = np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(art, m, (W, H), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((fh, fw), 255, np.uint8), m, (W, H), flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    scene = (alpha * warped + (1 - alpha) * wall).astype(np.uint8)
    inner_src = np.array([[frame, frame], [frame + pw, frame], [frame + pw, frame + ph], [frame, frame + ph]], np.float32)
    inner = cv2.perspectiveTransform(inner_src.reshape(-1, 1, 2), m).reshape(4, 2)
    return Image.fromarray(scene), dst.astype(np.float64), inner.astype(np.float64)


def _corner_error(found: list[tuple[float, float]], truth: np.ndarray) -> float:
    """Largest corner distance as a fraction of the true quad's diagonal."""
    f = order_corners(np.array(found))
    t = order_corners(truth)
    diag = np.linalg.norm(t[2] - t[0])
    return float(np.linalg.norm(f - t, axis=1).max() / diag)


@pytest.mark.parametrize("seed", range(8))
def test_generated_scene_outer_corners(seed: int) -> None:
    photo, outer, _ = make_wall_scene(seed)
    crop = find_painting(photo, PhotoConfig(trim_frame=False))
    assert crop.found
    assert _corner_error(crop.corners, outer) < 0.03


@pytest.mark.parametrize("seed", range(8))
def test_generated_scene_canvas_inside_frame(seed: int) -> None:
    photo, outer, inner = make_wall_scene(100 + seed, frame_frac=0.09)
    crop = find_painting(photo)
    assert crop.found and crop.frame_trimmed
    assert _corner_error(crop.corners, inner) < 0.04
    assert _corner_error(crop.outer_corners, outer) < 0.03
    # the rectified canvas keeps roughly the painting's proportions
    t = order_corners(inner)
    true_aspect = np.linalg.norm(t[1] - t[0]) / np.linalg.norm(t[3] - t[0])
    w, h = crop.image.size
    assert abs(np.log((w / h) / true_aspect)) < 0.12


def test_generated_scene_plain_wall() -> None:
    photo, outer, _ = make_wall_scene(7, noisy=False)
    crop = find_painting(photo, PhotoConfig(trim_frame=False))
    assert crop.found and _corner_error(crop.corners, outer) < 0.03


def test_crop_is_full_resolution_and_dict() -> None:
    photo, outer, _ = make_wall_scene(3)
    big = photo.resize((photo.width * 3, photo.height * 3), Image.Resampling.BICUBIC)
    crop = find_painting(big, PhotoConfig(trim_frame=False))
    assert crop.found
    assert _corner_error(crop.corners, outer * 3) < 0.03
    t = order_corners(outer * 3)
    assert crop.image.width > 0.9 * np.linalg.norm(t[1] - t[0])  # warped from the original pixels
    d = crop.to_dict()
    assert d["found"] is True and len(d["box"]) == 4 and all(len(p) == 2 for p in d["box"])


@pytest.mark.parametrize("kind", ["plain", "noise", "gradient", "tiny"])
def test_no_painting_falls_back_to_whole_image(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "plain":
        arr = np.full((480, 640, 3), (200, 190, 170), np.uint8)
    elif kind == "noise":
        arr = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    elif kind == "gradient":
        arr = np.repeat(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], 480, axis=0).repeat(3, axis=2)
    else:
        arr = np.full((20, 30, 3), 128, np.uint8)
    img = Image.fromarray(arr)
    crop = find_painting(img)
    assert isinstance(crop, PhotoCrop)
    assert not crop.found
    assert crop.image.size == img.size
    assert crop.corners == [(0.0, 0.0), (float(img.width), 0.0), (float(img.width), float(img.height)), (0.0, float(img.height))]


def test_letterboxed_picture_is_trimmed_to_the_picture() -> None:
    rng = np.random.default_rng(5)
    art = _texture(rng, 300, 200)
    page = np.full((500, 500, 3), 255, np.uint8)
    page[150:350, 100:400] = art
    crop = find_painting(Image.fromarray(page), PhotoConfig(trim_frame=False))
    assert crop.found
    assert _corner_error(crop.corners, np.array([[100, 150], [400, 150], [400, 350], [100, 350]], float)) < 0.03


# --------------------------------------------------------------------------- real photos

#: Photos in ../shared/data/louvre/photos where a framed painting hangs on a visible wall.
WALL_PHOTOS = (
    "genre/cl000000001.jpg",
    "genre/cl000000002.jpg",
    "landscape/cl000000005.jpg",
    "portrait/photo_2023-08-16_14-38-42.jpg",
    "portrait/photo_2023-08-16_15-24-14.jpg",
    "portrait/photo_2023-08-16_15-24-25.jpg",
)


@pytest.mark.shared_data
def test_real_museum_photos(shared_data: Path) -> None:
    photos = sorted((shared_data / "louvre" / "photos").glob("*/*.jpg"))
    assert len(photos) >= 50
    crops = {p.relative_to(shared_data / "louvre" / "photos").as_posix(): find_painting(Image.open(p).convert("RGB")) for p in photos}
    found = sum(c.found for c in crops.values())
    assert found > len(photos) / 2, f"found a painting in only {found}/{len(photos)} photos"
    for name in WALL_PHOTOS:
        crop = crops[name]
        w, h = Image.open(shared_data / "louvre" / "photos" / name).size
        area = abs(cv2.contourArea(np.array(crop.corners, np.float32)))
        assert crop.found and crop.method in ("edges", "wall"), name
        assert area < 0.6 * w * h, f"{name}: the crop should leave the wall out"
