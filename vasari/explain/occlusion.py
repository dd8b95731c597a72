"""Occlusion attribution: which regions of the picture drove an answer.

Gradient-free, so it works on any backbone the engine runs (the ONNX graph has no gradients)
and on any feature, the "stats" feature included (means/stds of feature maps, for which a
class-activation map does not exist). The network input (the centre crop the heads see) is
cut into a ``grid`` x ``grid`` lattice of cells; a square of ``patch`` x ``patch`` cells,
filled with the preprocessing mean colour (a neutral grey: the network reads it as zero),
slides over it one cell at a time, also half off the border, so that every cell is covered
by exactly ``patch**2`` windows. All occluded copies and the picture itself go through the
engine in one call (its own micro-batches and streams), the heads score them all at once,
and a window's attribution is the drop in the calibrated probability of the explained label.
A cell gets the mean drop of the windows covering it; the positive part, normalised to sum
to 1, is the explanation's "mass".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vasari.errors import InputError


@dataclass(frozen=True)
class ExplainConfig:
    """How finely a picture is explained, and so what it costs.

    ``grid``: cells per side of the returned map. ``patch``: side of the occluding square in
    cells (sliding one cell at a time). The engine embeds ``(grid + patch - 1)**2 + 1``
    pictures per explanation: 65 with the defaults. Measured side by side
    (``benchmarks/explain.py``, 12 generated pictures, share of the mass in the labelled
    quadrant): 7x2 .80, 6x2 .82 (50 pictures, a coarser 6 x 6 map), 8x2 .77 (82 pictures),
    8x1 .67 (no overlap: one window per cell, noisier). 7x2 keeps a 7 x 7 map at 0.8x the
    time of 8x2; the time is proportional to the pictures embedded.
    """

    grid: int = 7
    patch: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.grid, bool) or not isinstance(self.grid, (int, np.integer)) or not 2 <= self.grid <= 16:
            raise InputError(f"grid must be an integer from 2 to 16 (cells per side), got {self.grid!r}")
        if isinstance(self.patch, bool) or not isinstance(self.patch, (int, np.integer)) \
                or not 1 <= self.patch <= self.grid:
            raise InputError(f"patch must be an integer from 1 to grid ({self.grid}), got {self.patch!r}")

    @property
    def windows_per_side(self) -> int:
        return self.grid + self.patch - 1

    @property
    def copies(self) -> int:
        """Occluded copies embedded per explanation (the picture itself is one more)."""
        return self.windows_per_side ** 2


def window_bounds(size: int, config: ExplainConfig) -> list[tuple[int, int]]:
    """Pixel spans ``[start, stop)`` of the windows along one side of a ``size`` px crop:
    window ``k`` covers cells ``k - patch + 1 .. k`` (clipped to the crop)."""
    cell = size / config.grid
    spans = []
    for k in range(config.windows_per_side):
        first = k - config.patch + 1
        start = max(0, round(first * cell))
        stop = min(size, round((first + config.patch) * cell))
        spans.append((start, stop))
    return spans


def occluded_copies(crop: np.ndarray, config: ExplainConfig, fill: np.ndarray) -> np.ndarray:
    """``(copies, size, size, 3)`` uint8: ``crop`` with each window painted ``fill``, rows first."""
    size = crop.shape[0]
    spans = window_bounds(size, config)
    out = np.repeat(crop[None], config.copies, axis=0)
    n = 0
    for top, bottom in spans:
        for left, right in spans:
            out[n, top:bottom, left:right] = fill
            n += 1
    return out


def cell_scores(drops: np.ndarray, config: ExplainConfig) -> np.ndarray:
    """``(grid, grid)`` mean drop of the ``patch**2`` windows covering each cell, from the
    drops of the windows in ``occluded_copies`` order."""
    side, patch = config.windows_per_side, config.patch
    windows = np.asarray(drops, dtype=np.float64).reshape(side, side)
    cells = np.zeros((config.grid, config.grid))
    for dr in range(patch):
        for dc in range(patch):
            cells += windows[dr:dr + config.grid, dc:dc + config.grid]
    return cells / patch ** 2


def mass(cells: np.ndarray) -> np.ndarray:
    """The positive part of a cell map normalised to sum to 1 (all zeros when nothing
    occluded lowered the probability: no region drove the answer more than the rest)."""
    positive = np.clip(np.asarray(cells, dtype=np.float64), 0.0, None)
    total = positive.sum()
    return positive / total if total > 0 else positive


def fill_colour(mean: tuple[float, float, float]) -> np.ndarray:
    """The uint8 colour the network reads as zero input (its preprocessing mean)."""
    return np.clip(np.round(np.asarray(mean) * 255.0), 0, 255).astype(np.uint8)
