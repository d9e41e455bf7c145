"""The mouse cursor: a standard arrow drawn from a vector outline, composited into frames.

Xvfb's framebuffer has no cursor, so desktop recordings get one drawn in from the logged pointer
position (the paper's "SVG mask/reference" cursor supervision), and evaluation looks for the same
sprite in generated frames (``neuralcomputer.eval.gui.locate_cursor``).

The arrow is the familiar left-pointing one, about 12x19 px at scale 1: black 1 px outline, white
fill, the hotspot at the tip (the sprite's top-left pixel). It is rasterised here, with 8x8
supersampling for anti-aliased edges, rather than shipped as a bitmap, so any scale stays crisp.

Shapes: frames ``(H, W, 3)`` uint8; the sprite ``(h, w, 4)`` uint8 RGBA, straight (not premultiplied)
alpha; positions ``(x, y)`` in pixels, x to the right, y down.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from neuralcomputer.errors import NCError

# Outer outline of the arrow at scale 1, in pixel-corner coordinates (x right, y down), tip at the
# origin: left edge, notch, tail, head's lower edge, back up the 45-degree diagonal to the tip.
ARROW_OUTLINE: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (0.0, 17.0),
    (3.7, 13.3),
    (6.3, 19.0),
    (9.9, 17.7),
    (7.3, 12.2),
    (12.0, 12.2),
)
ARROW_SIZE = (12, 19)  # (w, h) at scale 1
_SUPERSAMPLE = 8


class CursorSprite(NamedTuple):
    """An RGBA cursor image and the pixel ``(x, y)`` inside it that sits on the pointer position."""

    rgba: np.ndarray  # (h, w, 4) uint8, straight alpha
    hotspot: tuple[int, int]


def _inside_polygon(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule for many points against one polygon ``(V, 2)``."""
    inside = np.zeros(px.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        crosses = (y0 > py) != (y1 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (px < x_at)
    return inside


def _distance_to_outline(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Euclidean distance from each point to the nearest polygon edge."""
    best = np.full(px.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(px - (x0 + t * dx), py - (y0 + t * dy)))
    return best


@functools.lru_cache(maxsize=16)
def _render_arrow(scale: float) -> np.ndarray:
    poly = np.asarray(ARROW_OUTLINE) * scale
    w, h = math.ceil(ARROW_SIZE[0] * scale), math.ceil(ARROW_SIZE[1] * scale)
    ss = _SUPERSAMPLE
    ys, xs = np.mgrid[0 : h * ss, 0 : w * ss]
    px, py = (xs + 0.5) / ss, (ys + 0.5) / ss  # sub-pixel centres
    inside = _inside_polygon(px, py, poly)
    fill = inside & (_distance_to_outline(px, py, poly) >= max(1.0, scale))  # outline ~1 px per unit scale
    coverage = inside.reshape(h, ss, w, ss).mean(axis=(1, 3))
    white = fill.reshape(h, ss, w, ss).mean(axis=(1, 3))
    # Straight alpha: the colour of the covered part is white's share of the coverage.
    grey = np.divide(white, coverage, out=np.zeros_like(white), where=coverage > 0)
    rgba = np.empty((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = np.round(grey * 255)[..., None]
    rgba[..., 3] = np.round(coverage * 255)
    rgba.setflags(write=False)
    return rgba


def cursor_sprite(scale: float = 1.0) -> CursorSprite:
    """The arrow cursor at ``scale`` (1.0 = ~12x19 px): ``(rgba (h, w, 4) uint8, hotspot (x, y))``."""
    if not (0.5 <= scale <= 16):
        raise NCError(f"cursor scale must be in [0.5, 16], got {scale}")
    return CursorSprite(_render_arrow(float(scale)).copy(), (0, 0))


def _placement(
    frame_hw: tuple[int, int], x: float, y: float, sprite: CursorSprite
) -> tuple[slice, slice, slice, slice] | None:
    """Frame and sprite slices where the sprite lands with its hotspot at ``(x, y)``; None if off-frame."""
    height, width = frame_hw
    h, w = sprite.rgba.shape[:2]
    left, top = round(x) - sprite.hotspot[0], round(y) - sprite.hotspot[1]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, width), min(top + h, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1), slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)


def composite_cursor(frame: np.ndarray, x: float, y: float, sprite: CursorSprite) -> np.ndarray:
    """Return a copy of ``frame`` ``(H, W, 3)`` uint8 with the cursor's hotspot at ``(x, y)``.

    Alpha-blended, clipped at the frame's edges; positions are rounded to whole pixels.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise NCError(f"expected an (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")
    out = frame.copy()
    where = _placement(frame.shape[:2], x, y, sprite)
    if where is None:
        return out
    fy, fx, sy, sx = where
    patch = sprite.rgba[sy, sx].astype(np.float32)
    alpha = patch[..., 3:] / 255.0
    blended = out[fy, fx].astype(np.float32) * (1.0 - alpha) + patch[..., :3] * alpha
    out[fy, fx] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out


def cursor_mask(shape: tuple[int, ...], x: float, y: float, sprite: CursorSprite) -> np.ndarray:
    """The cursor's coverage in [0, 1] as an ``(H, W)`` float32 mask, for a frame of ``shape`` (H, W[, C])."""
    height, width = shape[:2]
    mask = np.zeros((height, width), dtype=np.float32)
    where = _placement((height, width), x, y, sprite)
    if where is not None:
        fy, fx, sy, sx = where
        mask[fy, fx] = sprite.rgba[sy, sx, 3] / 255.0
    return mask
