"""GUI metrics: the paper's "+15" protocol and a cursor hit rate.

"+15": a desktop clip is mostly static, so scoring every frame rewards copying the first one. The
paper scores only the frames that follow an action: for an action at time tau the frame
``f = round(tau * fps)`` (the frame the action lands on) is skipped and ``f+1 .. f+15`` are taken,
clipped to the clip; windows of different actions are merged without duplicates. PSNR/SSIM/LPIPS
are averaged over those frames; for FVD+15 the selected frames are concatenated and subsampled to
the 16 frames FVD takes.

Cursor hit rate: the cursor sprite of ``neuralcomputer.data.desktop.cursor`` is located in each generated
frame by masked normalised cross-correlation, and a frame is a hit at radius r when the located
hotspot is within r pixels of the logged pointer position (no cursor found = miss).

Shapes: clips ``(T, H, W, 3)`` uint8; positions ``(x, y)`` in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft

from neuralcomputer.data.desktop.cursor import CursorSprite
from neuralcomputer.errors import NCError
from neuralcomputer.eval.fvd import CLIP_FRAMES, subsample_or_pad
from neuralcomputer.eval.image_metrics import psnr, ssim
from neuralcomputer.eval.lpips import LPIPS, lpips_video

PLUS_WINDOW = 15
HIT_RADII = (2, 5, 10, 20)


def plus15_frame_indices(
    action_times: Sequence[float] | np.ndarray, fps: float, num_frames: int, window: int = PLUS_WINDOW
) -> np.ndarray:
    """Sorted, de-duplicated frame indices ``f+1 .. f+window`` after each action, ``f = round(tau * fps)``.

    Rounding is half-up (``floor(x + 0.5)``), not Python's half-to-even, so an action exactly between
    two frames lands on the later one. Indices outside ``[0, num_frames)`` are dropped, so an action
    near the end contributes fewer frames and one past the end none. Returns int64 ``(K,)``.
    """
    if fps <= 0:
        raise NCError(f"fps must be positive, got {fps}")
    times = np.asarray(action_times, dtype=np.float64).reshape(-1)
    if times.size == 0 or num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    landing = np.floor(times * fps + 0.5).astype(np.int64)  # (A,)
    candidates = (landing[:, None] + np.arange(1, window + 1)[None, :]).reshape(-1)  # (A * window,)
    candidates = candidates[(candidates >= 0) & (candidates < num_frames)]
    return np.unique(candidates)


def plus15_scores(
    pred: np.ndarray,
    ref: np.ndarray,
    action_times: Sequence[float] | np.ndarray,
    fps: float,
    lpips_model: LPIPS | None = None,
    window: int = PLUS_WINDOW,
) -> dict[str, float | int | None]:
    """PSNR/SSIM (and LPIPS when a model is given) averaged over one clip's "+15" frames.

    ``pred`` and ``ref`` are ``(T, H, W, 3)`` uint8. Returns ``{"frames": K, "psnr", "ssim"[, "lpips"]}``;
    with no frame selected (no actions, or all past the end) the metrics are None, never a number.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape or pred.ndim != 4:
        raise NCError(f"expected two (T, H, W, 3) clips of the same shape, got {pred.shape} and {ref.shape}")
    indices = plus15_frame_indices(action_times, fps, len(pred), window)
    scores: dict[str, float | int | None] = {"frames": int(indices.size), "psnr": None, "ssim": None}
    if lpips_model is not None:
        scores["lpips"] = None
    if indices.size == 0:
        return scores
    p, r = pred[indices], ref[indices]
    scores["psnr"] = psnr(p, r)  # from the MSE over the selected frames, as psnr() does for a clip
    scores["ssim"] = ssim(p, r)
    if lpips_model is not None:
        scores["lpips"] = lpips_video(p, r, lpips_model)
    return scores


def plus15_fvd_frames(frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The "+15" frames of one clip as a 16-frame FVD clip: ``(T, H, W, 3)`` -> ``(16, H, W, 3)``."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise NCError("no +15 frames selected: the clip has no action inside it")
    return subsample_or_pad(np.asarray(frames)[indices], CLIP_FRAMES)


def _luminance(frame: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(H, W)`` float64 in [0, 1] (Rec. 601 weights)."""
    return (np.asarray(frame, np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0


def locate_cursor(
    frame: np.ndarray,
    sprite: CursorSprite,
    min_score: float = 0.8,
    min_visible: float = 0.35,
    min_contrast: float = 0.1,
) -> tuple[int, int] | None:
    """The cursor's hotspot ``(x, y)`` in ``frame`` ``(H, W, 3)``, or None when no good match exists.

    Masked normalised cross-correlation (Padfield 2012) of the sprite's luminance against the
    frame's, over the sprite's fully opaque pixels only (half-covered edge pixels carry the
    background, which is unknown). A second mask marks the frame itself, so a cursor cut off by the
    right or bottom edge is still found from its visible part when at least ``min_visible`` of it
    shows. Scores lie in [-1, 1]; a fully visible match must reach ``min_score``, a partly visible
    one proportionally more (towards 1). Regions whose luminance std under the sprite is below
    ``min_contrast`` (in [0, 1] units) never match. The sprite must be drawn at the scale given; a
    heavily blurred cursor (Gaussian sigma above ~1 px) scores below 0.8 and needs a lower bar.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise NCError(f"expected an (H, W, 3) frame, got {frame.shape}")
    template_mask = (sprite.rgba[..., 3] >= 250).astype(np.float64)  # (h, w)
    template = _luminance(sprite.rgba[..., :3]) * template_mask
    h, w = template_mask.shape
    hx, hy = sprite.hotspot
    height, width = frame.shape[:2]

    # Pad so that every top-left offset with the hotspot inside the frame is a "valid" position.
    pad = ((hy, h - 1 - hy), (hx, w - 1 - hx))
    image = np.pad(_luminance(frame), pad)
    inside = np.pad(np.ones((height, width)), pad)
    out_shape = (height, width)  # one score per hotspot position
    full_shape = (image.shape[0] + h - 1, image.shape[1] + w - 1)
    fast_shape = tuple(scipy.fft.next_fast_len(n, real=True) for n in full_shape)

    def spectrum(a: np.ndarray) -> np.ndarray:
        return scipy.fft.rfft2(a, fast_shape)

    image_spectra = {"f": spectrum(inside), "I": spectrum(image), "I2": spectrum(image * image)}
    # Correlation = convolution with the kernel flipped in both axes.
    kernel_spectra = {
        "m": spectrum(template_mask[::-1, ::-1]),
        "mT": spectrum(template[::-1, ::-1]),
        "mT2": spectrum((template * template)[::-1, ::-1]),
    }

    def correlate(image_key: str, kernel_key: str) -> np.ndarray:
        full = scipy.fft.irfft2(image_spectra[image_key] * kernel_spectra[kernel_key], fast_shape)
        return full[h - 1 : h - 1 + out_shape[0], w - 1 : w - 1 + out_shape[1]]

    n = np.round(correlate("f", "m"))  # opaque sprite pixels that fall inside the frame
    sum_t, sum_t2 = correlate("f", "mT"), correlate("f", "mT2")
    sum_i, sum_i2, sum_ti = correlate("I", "m"), correlate("I2", "m"), correlate("I", "mT")
    safe_n = np.maximum(n, 1.0)
    var_t = sum_t2 - sum_t * sum_t / safe_n
    var_i = sum_i2 - sum_i * sum_i / safe_n
    cov = sum_ti - sum_t * sum_i / safe_n
    # NCC ignores contrast, so a faint edge can mimic the outline; the cursor spans black to white
    # (luminance std ~0.45), so demand a std of at least min_contrast (also keeps FFT round-off out).
    low_contrast = var_i < n * min_contrast**2
    flat = low_contrast | (var_t <= 1e-9) | (n < min_visible * template_mask.sum())
    score = np.where(flat, -1.0, cov / np.sqrt(np.maximum(var_t * var_i, 1e-18)))
    # A partly visible cursor has fewer pixels to agree by chance, so it must agree better: the bar
    # rises from min_score (fully visible) towards 1 as the visible share shrinks.
    visible = n / template_mask.sum()
    margin = score - (1.0 - (1.0 - min_score) * visible)
    best = int(np.argmax(margin))
    y, x = divmod(best, out_shape[1])
    if margin[y, x] < 0:
        return None
    return x, y


def cursor_hit_rate(
    frames: np.ndarray,
    logged_xy: np.ndarray | Sequence[tuple[float, float]],
    sprite: CursorSprite,
    radii: Sequence[int] = HIT_RADII,
    min_score: float = 0.8,
) -> dict[int, float]:
    """Fraction of frames whose located cursor is within r px (Euclidean) of the logged position.

    ``frames`` ``(T, H, W, 3)``, ``logged_xy`` ``(T, 2)``. A frame with no cursor found counts as a
    miss at every radius. Returns ``{r: rate}`` for each radius.
    """
    frames = np.asarray(frames)
    logged = np.asarray(logged_xy, dtype=np.float64).reshape(-1, 2)
    if frames.ndim != 4 or len(frames) != len(logged):
        raise NCError(f"need (T, H, W, 3) frames and (T, 2) positions, got {frames.shape} and {logged.shape}")
    if len(frames) == 0:
        raise NCError("no frames to score")
    distances = np.full(len(frames), np.inf)
    for t, frame in enumerate(frames):
        found = locate_cursor(frame, sprite, min_score=min_score)
        if found is not None:
            distances[t] = float(np.hypot(found[0] - logged[t, 0], found[1] - logged[t, 1]))
    return {int(r): float(np.mean(distances <= r)) for r in radii}


def changed_psnr(pred: np.ndarray, ref: np.ndarray, prev: np.ndarray) -> float | None:
    """PSNR (dB) over the pixels where the true frame differs from the previous true frame.

    ``pred``, ``ref``, ``prev`` ``(T, H, W, 3)`` uint8: the prediction of each frame, the true frame and
    the true frame before it. The squared error is pooled over every changed pixel (all channels) of
    all frames, so a clip where little changes weighs little. None when nothing changes. Copying the
    previous frame scores low here by construction; a desktop model earns its keep on these pixels.
    """
    pred, ref, prev = (np.asarray(a) for a in (pred, ref, prev))
    if not (pred.shape == ref.shape == prev.shape) or pred.ndim != 4:
        raise NCError(f"expected three (T, H, W, 3) clips of one shape, got {pred.shape}, {ref.shape}, {prev.shape}")
    changed = np.any(ref != prev, axis=-1)  # (T, H, W)
    if not changed.any():
        return None
    err = (pred[changed].astype(np.float64) - ref[changed].astype(np.float64)) / 255.0  # (N, 3)
    mse = float(np.mean(err * err))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def changed_box(before: np.ndarray, after: np.ndarray, margin: int = 4, min_side: int = 16
                ) -> tuple[slice, slice] | None:
    """The bounding box ``(rows, cols)`` of the pixels that differ between two ``(H, W, 3)`` frames,
    grown by ``margin`` and to at least ``min_side`` px a side (SSIM's window needs 11); None if equal."""
    diff = np.any(np.asarray(before) != np.asarray(after), axis=-1)
    if not diff.any():
        return None
    ys, xs = np.nonzero(diff)
    h, w = diff.shape

    def span(lo: int, hi: int, size: int) -> slice:
        lo, hi = lo - margin, hi + 1 + margin
        grow = max(0, min_side - (hi - lo))
        lo, hi = lo - grow // 2, hi + grow - grow // 2
        lo, hi = max(0, lo), min(size, hi)
        return slice(max(0, min(lo, size - min_side)), max(hi, min(min_side, size)))

    return span(int(ys.min()), int(ys.max()), h), span(int(xs.min()), int(xs.max()), w)
