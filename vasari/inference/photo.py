"""Museum photos: find the painting in a photo of a wall, rectify it and crop it.

A visitor's photo shows a framed painting on a wall, seen at an angle, with a label beside
it and often white letterbox padding around the whole picture. ``find_painting`` locates the
painting as a convex quadrilateral, corrects the perspective at full resolution and
optionally trims the frame moulding, so that the classifier sees the canvas the way the
catalog images show it. When nothing plausible is found it returns the whole image
(``found=False``), so callers can always classify ``crop.image``.

How (all on a copy downscaled to ``PhotoConfig.work_side``):

1. strip uniform letterbox padding (rows/columns of one flat colour at the borders);
2. propose quadrilaterals from two detectors: Canny edges -> closed contours -> convex hull
   -> 4-point polygon, and wall segmentation (pixels that differ in colour from the wall
   sampled at the border -> largest blob -> 4-point polygon);
3. refine each side by a robust line fit to the edge pixels near it, and score each
   candidate by edge support along its sides, the colour contrast across them, its
   geometry (angles, aspect) and its size;
4. warp the best one with ``cv2.getPerspectiveTransform`` / ``warpPerspective`` from the
   original pixels, after optionally finding the canvas inside the frame (the strongest
   straight line parallel to each side within the frame band, consistent in width).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from vasari.inference.schema import CropInfo


@dataclass(frozen=True)
class PhotoConfig:
    """Knobs of the painting finder (fractions are of the picture after padding removal)."""

    work_side: int = 640            # detection runs at this long side (pixels)
    min_area: float = 0.06          # smallest plausible painting, fraction of the picture
    max_area: float = 0.90          # larger than this is "the whole photo": nothing to crop
    max_area_padded: float = 0.985  # the same inside letterbox padding (the picture's own edge)
    max_aspect: float = 4.0         # long side / short side of the rectified painting
    min_angle: float = 62.0         # interior angles must lie in [min_angle, 180 - min_angle]
    min_score: float = 0.45         # below this the finder falls back to the whole image
    trim_padding: bool = True       # remove flat letterbox borders first
    trim_frame: bool = True         # cut the frame moulding off (canvas only)
    max_frame: float = 0.22         # a frame is at most this fraction of each side
    min_frame_contrast: float = 2.2 # frame edge strength vs. the band's median, to trust it
    pad_tolerance: int = 6          # per-channel difference still counted as padding colour


@dataclass
class PhotoCrop:
    """The result: the rectified painting (or the whole image) and where it was found.

    ``corners`` are four (x, y) points in the input image's pixels, clockwise from the
    top-left, of the region that ``image`` shows. ``score`` (0..1) is the finder's
    confidence; ``method`` says which detector won ("edges", "wall", "padding" or "none");
    ``frame_trimmed`` whether a frame was cut off.
    """

    image: Image.Image
    found: bool
    corners: list[tuple[float, float]]
    score: float
    method: str = "none"
    frame_trimmed: bool = False
    outer_corners: list[tuple[float, float]] | None = field(default=None, repr=False)

    def info(self) -> CropInfo:
        """The ``crop`` member of the prediction (docs/contract.md)."""
        return CropInfo(
            found=bool(self.found),
            box=[[round(float(x), 1), round(float(y), 1)] for x, y in self.corners],
            score=round(float(self.score), 3),
            method=self.method,
            frame_trimmed=bool(self.frame_trimmed),
        )

    def to_dict(self) -> dict:
        """The ``crop`` member of the prediction, as JSON."""
        return self.info().model_dump(mode="json")


# ----------------------------------------------------------------------------- geometry


def order_corners(pts: np.ndarray) -> np.ndarray:
    """Four points ordered top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(pts, dtype=np.float64).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # counter-clockwise in maths terms = clockwise on screen
    start = int(np.argmin(pts.sum(axis=1)))  # top-left has the smallest x + y
    return np.roll(pts, -start, axis=0)


def _interior_angles(q: np.ndarray) -> np.ndarray:
    out = []
    for i in range(4):
        a, b, c = q[i - 1], q[i], q[(i + 1) % 4]
        v1, v2 = a - b, c - b
        cos = np.dot(v1, v2) / (np.linalg.norm(v1) * np.linalg.norm(v2) + 1e-9)
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.array(out)


def _side_lengths(q: np.ndarray) -> np.ndarray:
    return np.linalg.norm(q - np.roll(q, -1, axis=0), axis=1)  # top, right, bottom, left


def _quad_area(q: np.ndarray) -> float:
    return float(abs(cv2.contourArea(q.astype(np.float32))))


def _plausible(q: np.ndarray, area_total: float, cfg: PhotoConfig, max_area: float | None = None) -> bool:
    if not cv2.isContourConvex(q.astype(np.float32).reshape(-1, 1, 2)):
        return False
    frac = _quad_area(q) / area_total
    if not cfg.min_area <= frac <= (max_area if max_area is not None else cfg.max_area):
        return False
    angles = _interior_angles(q)
    if angles.min() < cfg.min_angle or angles.max() > 180 - cfg.min_angle:
        return False
    top, right, bottom, left = _side_lengths(q)
    width, height = (top + bottom) / 2, (left + right) / 2
    if min(width, height) < 1 or max(width, height) / min(width, height) > cfg.max_aspect:
        return False
    # opposite sides may differ under perspective, but not wildly
    if max(top, bottom) / max(min(top, bottom), 1) > 2.0 or max(left, right) / max(min(left, right), 1) > 2.0:
        return False
    return True


def _to_quad(points: np.ndarray) -> np.ndarray | None:
    """A 4-point convex polygon approximating a point set (its hull), or None."""
    hull = cv2.convexHull(points.reshape(-1, 1, 2).astype(np.float32))
    if len(hull) < 4:
        return None
    peri = cv2.arcLength(hull, True)
    lo, hi = 0.005, 0.15
    best = None
    for _ in range(18):  # binary search on epsilon for exactly four vertices
        eps = (lo + hi) / 2
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) > 4:
            lo = eps
        elif len(approx) < 4:
            hi = eps
        else:
            best = approx
            hi = eps  # the smallest epsilon giving four points hugs the hull best
    if best is None:
        return None
    return order_corners(best.reshape(4, 2))


def _intersect(l1: tuple[np.ndarray, np.ndarray], l2: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    (p1, d1), (p2, d2) = l1, l2
    m = np.array([d1, -d2]).T
    if abs(np.linalg.det(m)) < 1e-6:
        return None
    t = np.linalg.solve(m, p2 - p1)
    return p1 + t[0] * d1


# ----------------------------------------------------------------------------- detection


def _padding_box(rgb: np.ndarray, tol: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the picture inside flat letterbox borders (whole image if none)."""
    h, w = rgb.shape[:2]
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int16)
    colour = np.median(ring, axis=0)
    close = (np.abs(rgb.astype(np.int16) - colour).max(axis=2) <= tol)
    if close[0].mean() < 0.9 and close[-1].mean() < 0.9 and close[:, 0].mean() < 0.9 and close[:, -1].mean() < 0.9:
        return 0, 0, w, h
    rows = close.mean(axis=1) >= 0.97
    cols = close.mean(axis=0) >= 0.97
    y0 = int(np.argmin(rows)) if not rows.all() else 0
    y1 = h - int(np.argmin(rows[::-1])) if not rows.all() else h
    x0 = int(np.argmin(cols)) if not cols.all() else 0
    x1 = w - int(np.argmin(cols[::-1])) if not cols.all() else w
    if x1 - x0 < w * 0.2 or y1 - y0 < h * 0.2:
        return 0, 0, w, h
    return x0, y0, x1, y1


def _edges(rgb: np.ndarray) -> np.ndarray:
    """Canny edges of lightness and of both colour axes (a gilt frame on a wall of the same
    brightness is only visible in colour), OR-ed together."""
    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (5, 5), 0), cv2.COLOR_RGB2LAB)
    out = cv2.Canny(lab[..., 0], 30, 80)
    for c in (1, 2):
        chan = np.clip((lab[..., c].astype(np.int16) - 128) * 2 + 128, 0, 255).astype(np.uint8)
        out |= cv2.Canny(chan, 30, 80)
    return out


def _edge_candidates(edges: np.ndarray, area_total: float, cfg: PhotoConfig) -> list[np.ndarray]:
    out = []
    k = max(3, int(round(min(edges.shape) * 0.006)) | 1)
    closed = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    closed = cv2.dilate(closed, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(closed, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted(contours, key=cv2.contourArea, reverse=True)[:12]
    for c in contours:
        if cv2.contourArea(cv2.convexHull(c)) < cfg.min_area * area_total:
            continue
        peri = cv2.arcLength(c, True)
        for eps in (0.02, 0.04):
            approx = cv2.approxPolyDP(c, eps * peri, True)
            if len(approx) == 4:
                out.append(order_corners(approx.reshape(4, 2)))
                break
        q = _to_quad(c)
        if q is not None:
            out.append(q)
    return out


def _wall_candidates(rgb: np.ndarray, area_total: float, cfg: PhotoConfig) -> list[np.ndarray]:
    """Segment what is not wall: the wall colour is sampled on the picture's border ring."""
    h, w = rgb.shape[:2]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = max(2, int(0.03 * min(h, w)))
    ring = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)])
    out = []
    # the wall may be one colour, or the ring may mix wall and painting: try the dominant
    # cluster of the ring (k-means, k=2) as the wall model
    ring32 = ring[:: max(1, len(ring) // 4000)].astype(np.float32)
    _, labels, centres = cv2.kmeans(ring32, 2, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0), 3, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=2)
    models = [np.median(ring, axis=0)]
    if counts.max() / counts.sum() > 0.6:
        models.append(centres[int(np.argmax(counts))])
    # lightness counts less (shading); the chroma-only model ignores grey shadows on a grey wall
    weighted = [(m, np.array([0.6, 1.0, 1.0], np.float32)) for m in models]
    weighted.append((models[-1], np.array([0.15, 1.0, 1.0], np.float32)))
    for wall, weights in weighted:
        dist = np.sqrt((((lab - wall) * weights) ** 2).sum(axis=2))
        spread = float(np.percentile(np.sqrt((((ring - wall) * weights) ** 2).sum(axis=1)), 75))
        d8 = np.clip(dist * (255.0 / max(dist.max(), 1e-3)), 0, 255).astype(np.uint8)
        otsu, _ = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        thr = max(otsu * dist.max() / 255.0, 2.5 * spread + 4.0)
        mask = (dist > thr).astype(np.uint8) * 255
        k = max(3, int(0.015 * min(h, w)) | 1)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * k + 1, 2 * k + 1)))
        n, lbl, stats, _ = cv2.connectedComponentsWithStats(mask)
        if n <= 1:
            continue
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[biggest, cv2.CC_STAT_AREA] < cfg.min_area * area_total * 0.7:
            continue
        ys, xs = np.nonzero(lbl == biggest)
        q = _to_quad(np.stack([xs, ys], axis=1))
        if q is not None:
            out.append(q)
    return out


def _refine(q: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Snap each side onto the edge pixels near it (robust line fit), re-intersect corners."""
    h, w = edges.shape
    band = max(3.0, 0.02 * min(h, w))
    ys, xs = np.nonzero(edges)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    if len(pts) < 20:
        return q
    lines = []
    for i in range(4):
        a, b = q[i], q[(i + 1) % 4]
        d = b - a
        length = np.linalg.norm(d)
        if length < 5:
            return q
        d = d / length
        n = np.array([-d[1], d[0]])
        rel = pts - a
        t = rel @ d
        s = rel @ n
        sel = (np.abs(s) <= band) & (t > 0.1 * length) & (t < 0.9 * length)
        if sel.sum() < 0.25 * length * 0.8:  # too little edge evidence: keep the side
            lines.append((a, d))
            continue
        vx, vy, x0, y0 = cv2.fitLine(pts[sel].astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    out = []
    for i in range(4):
        p = _intersect(lines[i - 1], lines[i])
        if p is None or np.linalg.norm(p - q[i]) > 4 * band:
            return q
        out.append(p)
    return order_corners(np.array(out))


def _side_support(q: np.ndarray, edges_dilated: np.ndarray) -> np.ndarray:
    """Per side, the fraction of points along it that lie on an edge (0..1)."""
    h, w = edges_dilated.shape
    out = []
    for i in range(4):
        a, b = q[i], q[(i + 1) % 4]
        n = max(8, int(np.linalg.norm(b - a) / 2))
        ts = np.linspace(0.05, 0.95, n)
        p = a[None] + ts[:, None] * (b - a)[None]
        inside = (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)
        x = np.clip(np.round(p[:, 0]).astype(int), 0, w - 1)
        y = np.clip(np.round(p[:, 1]).astype(int), 0, h - 1)
        on = edges_dilated[y, x] > 0
        # a side lying on the picture's border (the painting runs off the photo) is supported
        border = (x <= 2) | (x >= w - 3) | (y <= 2) | (y >= h - 3)
        out.append(float(((on | border) & inside).sum() / n))
    return np.array(out)


def _masks(q: np.ndarray, shape: tuple[int, int], band: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of: a thin band just outside the quad, one just inside, and all the outside."""
    h, w = shape
    centre = q.mean(axis=0)
    grow = centre + (q - centre) * (1 + band)
    shrink = centre + (q - centre) * (1 - band)
    m_q = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(m_q, np.round(q).astype(np.int32), 1)
    m_grow = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(m_grow, np.round(grow).astype(np.int32), 1)
    m_shrink = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(m_shrink, np.round(shrink).astype(np.int32), 1)
    return (m_grow > m_q), (m_q > m_shrink), (m_grow == 0)


def _features(q: np.ndarray, edges: np.ndarray, edges_dilated: np.ndarray, lab: np.ndarray, area_total: float) -> dict:
    support = _side_support(q, edges_dilated)
    ring_out, ring_in, outside = _masks(q, edges.shape, 0.04)
    contrast = 0.0
    if ring_out.sum() > 20 and ring_in.sum() > 20:
        contrast = float(min(1.0, np.linalg.norm(lab[ring_out].mean(axis=0) - lab[ring_in].mean(axis=0)) / 40.0))
    # a wall is smooth: few edges outside the painting (labels and neighbours add some)
    out_density = float((edges[outside] > 0).mean()) if outside.sum() > 0.02 * area_total else 0.0
    outside_frac = float(outside.sum() / area_total)
    angles = _interior_angles(q)
    return {
        "support_min": float(support.min()),
        "support": float(support.mean()),
        "contrast": contrast,
        "out_density": out_density,
        "outside_frac": outside_frac,
        "squareness": float(1.0 - min(1.0, np.abs(angles - 90).max() / 45.0)),
        "area": _quad_area(q) / area_total,
    }


def _score(f: dict) -> float:
    """Confidence (0..1) that a candidate is the painting's outline on a wall."""
    if f["support_min"] < 0.35:
        return 0.0
    # a painting seen inside a painting (a window, a picture on a painted wall) has
    # textured surroundings; a painting on a wall has smooth ones
    if f["outside_frac"] > 0.15 and f["out_density"] > 0.04:
        return 0.0
    wall = 1.0 - min(1.0, f["out_density"] / 0.05) if f["outside_frac"] > 0.02 else 1.0
    size = min(1.0, np.sqrt(f["area"]) / 0.6)
    return float(0.35 * f["support"] + 0.15 * f["support_min"] + 0.15 * f["contrast"] + 0.2 * wall
                 + 0.05 * f["squareness"] + 0.1 * size)


# ----------------------------------------------------------------------------- frame trimming


def _line_profile(gray: np.ndarray, side: str, max_px: int) -> np.ndarray:
    """Per offset from one side: how much a straight line parallel to that side is there.

    The median (along the side's central 70%) of the gradient across the side is high for a
    long straight edge and low for texture, which is what a frame's inner edge looks like.
    """
    g = gray.astype(np.float32)
    if side in ("top", "bottom"):
        grad = np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
        w = g.shape[1]
        core = grad[:, int(0.15 * w): int(0.85 * w)]
        prof = np.median(core, axis=1)
        prof = prof if side == "top" else prof[::-1]
    else:
        grad = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3))
        h = g.shape[0]
        core = grad[int(0.15 * h): int(0.85 * h), :]
        prof = np.median(core, axis=0)
        prof = prof if side == "left" else prof[::-1]
    return prof[:max_px]


def _frame_insets(rect: np.ndarray, cfg: PhotoConfig) -> tuple[float, float, float, float] | None:
    """Insets (top, right, bottom, left) in pixels of the canvas inside a frame, or None."""
    gray = cv2.cvtColor(rect, cv2.COLOR_RGB2GRAY)
    gray = cv2.GaussianBlur(gray, (3, 3), 0)
    h, w = gray.shape
    sides = ("top", "right", "bottom", "left")
    extent = {"top": h, "bottom": h, "left": w, "right": w}
    profiles = {}
    for s in sides:
        max_px = max(4, int(cfg.max_frame * extent[s]))
        p = _line_profile(gray, s, max_px)
        skip = max(2, int(0.012 * extent[s]))  # ignore the outer edge of the frame itself
        p = p.copy()
        p[:skip] = 0
        base = float(np.median(p[skip:])) + 1.0
        profiles[s] = p / base
    # a frame has about the same width on every side: choose one width w* that the four
    # strongest lines agree with, then take each side's peak near it
    short = min(h, w)
    best, best_total = None, -1.0
    for fw in np.linspace(0.015 * short, cfg.max_frame * short, 40):
        total, picks = 0.0, {}
        for s in sides:
            p = profiles[s]
            lo, hi = int(0.7 * fw), min(len(p), int(1.3 * fw) + 2)
            if hi <= lo:
                picks[s] = (0.0, 0)
                continue
            j = lo + int(np.argmax(p[lo:hi]))
            picks[s] = (float(p[j]), j)
            total += min(p[j], 6.0)
        if total > best_total:
            best_total, best = total, picks
    if best is None:
        return None
    strong = sum(1 for s in sides if best[s][0] >= cfg.min_frame_contrast)
    if strong < 3:
        return None
    insets = [best[s][1] if best[s][0] >= cfg.min_frame_contrast * 0.6 else 0 for s in sides]
    # a missing side borrows its opposite's width
    for i in range(4):
        if insets[i] == 0:
            insets[i] = insets[(i + 2) % 4]
    if (insets[0] + insets[2]) > 0.5 * h or (insets[1] + insets[3]) > 0.5 * w:
        return None
    return tuple(float(v) for v in insets)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- public API


def _warp(img: np.ndarray, q: np.ndarray) -> np.ndarray:
    top, right, bottom, left = _side_lengths(q)
    out_w = max(8, int(round(max(top, bottom))))
    out_h = max(8, int(round(max(left, right))))
    dst = np.array([[0, 0], [out_w - 1, 0], [out_w - 1, out_h - 1], [0, out_h - 1]], np.float32)
    m = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
    return cv2.warpPerspective(img, m, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def _whole(image: Image.Image, score: float = 0.0) -> PhotoCrop:
    w, h = image.size
    corners = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    return PhotoCrop(image=image, found=False, corners=corners, score=score, method="none")


def _on_wall(f: dict) -> bool:
    """Whether a candidate is surrounded by a smooth wall (not by the rest of a picture)."""
    return f["outside_frac"] >= 0.2 and f["out_density"] <= 0.02 and f["contrast"] >= 0.3


def _choose(candidates: list, cfg: PhotoConfig):
    """The painting's outline among scored candidates, or None.

    Among the strong candidates the outermost wins: a frame's outer edge over the canvas
    inside it (the frame is trimmed afterwards) and over a window painted in the scene. But
    when that outermost one is just the photo's own extent (it fills the picture) while a
    strong candidate stands on a smooth wall inside it, that one is the painting.
    """
    if not candidates:
        return None
    top_score = max(c[0] for c in candidates)
    good = [c for c in candidates if c[0] >= max(cfg.min_score, top_score - 0.08)]
    if not good:
        return None
    best = max(good, key=lambda c: (_quad_area(c[1]), c[0]))
    if best[3]["area"] > 0.85:
        on_wall = [c for c in candidates if c[0] >= cfg.min_score + 0.1 and _on_wall(c[3])]
        if on_wall:
            best = max(on_wall, key=lambda c: (_quad_area(c[1]), c[0]))
    return best


def _parallel_inside(inner: np.ndarray, outer: np.ndarray, tol: float) -> bool:
    """Each side of ``inner`` runs at a near-constant distance inside the matching side of ``outer``."""
    for i in range(4):
        a, b = outer[i], outer[(i + 1) % 4]
        d = (b - a) / (np.linalg.norm(b - a) + 1e-9)
        n = np.array([-d[1], d[0]])
        d1 = float((inner[i] - a) @ n)
        d2 = float((inner[(i + 1) % 4] - a) @ n)
        if abs(d1 - d2) > tol:
            return False
    return True


def _nested_canvas(outer: np.ndarray, candidates: list, cfg: PhotoConfig) -> np.ndarray | None:
    """A good candidate centred inside ``outer`` and filling most of it: the canvas in its frame."""
    area_outer = _quad_area(outer)
    centre = outer.mean(axis=0)
    size = np.sqrt(area_outer)
    poly = outer.astype(np.float32).reshape(-1, 1, 2)
    best = None
    for score, q, _, _ in candidates:
        if score < cfg.min_score:
            continue
        ratio = _quad_area(q) / area_outer
        if not 0.3 <= ratio <= 0.9:
            continue
        if np.linalg.norm(q.mean(axis=0) - centre) > 0.15 * size:
            continue
        if any(cv2.pointPolygonTest(poly, (float(x), float(y)), False) < 0 for x, y in q):
            continue
        if not _parallel_inside(q, outer, 0.06 * size):
            continue
        if best is None or score > best[0]:
            best = (score, q)
    return None if best is None else best[1]


def _detect(small: np.ndarray, cfg: PhotoConfig) -> tuple[tuple[int, int, int, int], list[tuple[float, np.ndarray, str, dict]]]:
    """Padding box and scored candidate quads (in padding-box coordinates) of a small image."""
    x0, y0, x1, y1 = _padding_box(small, cfg.pad_tolerance) if cfg.trim_padding else (0, 0, small.shape[1], small.shape[0])
    content = np.ascontiguousarray(small[y0:y1, x0:x1])
    ch, cw = content.shape[:2]
    area_total = float(ch * cw)
    lab = cv2.cvtColor(content, cv2.COLOR_RGB2LAB).astype(np.float32)
    edges = _edges(content)
    edges_d = cv2.dilate(edges, np.ones((5, 5), np.uint8))
    padded = (x1 - x0) < small.shape[1] - 2 or (y1 - y0) < small.shape[0] - 2
    max_area = cfg.max_area_padded if padded else cfg.max_area
    candidates = []
    for method, quads in (("edges", _edge_candidates(edges, area_total, cfg)), ("wall", _wall_candidates(content, area_total, cfg))):
        for q in quads:
            for cand in (q, _refine(q, edges)):
                if _plausible(cand, area_total, cfg, max_area):
                    feats = _features(cand, edges, edges_d, lab, area_total)
                    candidates.append((_score(feats), cand, method, feats))
    return (x0, y0, x1, y1), candidates


def find_painting(image: Image.Image, config: PhotoConfig = PhotoConfig()) -> PhotoCrop:
    """Find, rectify and crop the painting in a photo; the whole image if none is found.

    >>> crop = find_painting(load_image("wall.jpg"))
    >>> crop.found, crop.corners, crop.image.size
    """
    cfg = config
    rgb_full = np.asarray(image.convert("RGB"))
    H, W = rgb_full.shape[:2]
    if min(H, W) < 32:
        return _whole(image)
    scale = min(1.0, cfg.work_side / max(H, W))
    small = cv2.resize(rgb_full, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else rgb_full
    (x0, y0, x1, y1), candidates = _detect(small, cfg)
    padded = (x1 - x0) < small.shape[1] - 2 or (y1 - y0) < small.shape[0] - 2
    ch, cw = y1 - y0, x1 - x0
    # prefer the outermost strong candidate: a frame's outer edge over the canvas inside it
    # (the frame is trimmed afterwards) and over a window or picture painted in the scene
    best = _choose(candidates, cfg)
    if best is None and not padded:
        return _whole(image, score=max((c[0] for c in candidates), default=0.0))
    if best is None:
        q_small = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float64)
        score, method = 0.5, "padding"
    else:
        score, q_small, method, _ = best
    offset = np.array([x0, y0], np.float64)
    q_full = (q_small + offset) / scale
    q_full[:, 0] = np.clip(q_full[:, 0], 0, W)
    q_full[:, 1] = np.clip(q_full[:, 1], 0, H)
    outer = q_full.copy()

    trimmed = False
    inner_q = _nested_canvas(q_small, candidates, cfg) if (cfg.trim_frame and best is not None) else None
    if inner_q is not None:
        q_full = (inner_q + offset) / scale
        trimmed = True
    elif cfg.trim_frame:
        # look for the canvas inside the frame on a work-resolution rectification
        small_q = q_full * scale
        rect = _warp(small, small_q)
        insets = _frame_insets(rect, cfg)
        if insets is not None:
            t, r, b, l = insets
            rh, rw = rect.shape[:2]
            inner = np.array([[l, t], [rw - 1 - r, t], [rw - 1 - r, rh - 1 - b], [l, rh - 1 - b]], np.float32)
            dst = np.array([[0, 0], [rw - 1, 0], [rw - 1, rh - 1], [0, rh - 1]], np.float32)
            m_inv = cv2.getPerspectiveTransform(dst, small_q.astype(np.float32))
            q_full = cv2.perspectiveTransform(inner.reshape(-1, 1, 2), m_inv).reshape(4, 2).astype(np.float64) / scale
            trimmed = True
    out = _warp(rgb_full, q_full)
    corners = [(float(x), float(y)) for x, y in q_full]
    return PhotoCrop(
        image=Image.fromarray(out),
        found=True,
        corners=corners,
        score=float(score),
        method=method,
        frame_trimmed=trimmed,
        outer_corners=[(float(x), float(y)) for x, y in outer],
    )
