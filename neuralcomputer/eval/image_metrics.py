"""PSNR and SSIM between a generated clip and its reference, as the paper reports them.

Both come from torchmetrics' functional API (frames scaled to float in [0, 1], ``data_range=1.0``,
SSIM with its defaults: 11x11 Gaussian window, sigma 1.5, k1 0.01, k2 0.03, computed on RGB).

Convention for video: the score is computed **per frame** and then averaged over frames (and over
clips when a batch is given), which is how the paper and most video-generation work report PSNR.
A frame that equals its reference has PSNR ``inf``; one such frame makes the mean ``inf`` too
(the report layer prints it as ``"inf"``), so callers that want a finite average should exclude
conditioning frames copied from the reference.

Shapes: a clip is ``(T, H, W, 3)`` and a batch of clips ``(N, T, H, W, 3)``; uint8 in [0, 255]
(float arrays are taken to be in [0, 1] already).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from neuralcomputer.errors import NCError

# SSIM holds ~5 float copies of every frame for its Gaussian filtering; chunking bounds the memory
# (75 frames at 1024x768 would otherwise need several GB).
_CHUNK_FRAMES = 8


def _as_frames(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Check two clips agree and flatten them to ``(F, H, W, 3)``; also return the leading shape."""
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise NCError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if pred.ndim not in (4, 5) or pred.shape[-1] != 3:
        raise NCError(f"expected frames shaped (T, H, W, 3) or (N, T, H, W, 3), got {pred.shape}")
    if pred.dtype != ref.dtype:
        raise NCError(f"prediction dtype {pred.dtype} differs from reference dtype {ref.dtype}")
    if pred.dtype != np.uint8 and not np.issubdtype(pred.dtype, np.floating):
        raise NCError(f"frames must be uint8 or float in [0, 1], got {pred.dtype}")
    lead = pred.shape[:-3]
    if math.prod(lead) == 0:
        raise NCError(f"no frames to score (shape {pred.shape})")
    return pred.reshape(-1, *pred.shape[-3:]), ref.reshape(-1, *ref.shape[-3:]), lead


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``(F, H, W, 3)`` uint8 or float -> ``(F, 3, H, W)`` float32 in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return x.float() / 255.0 if frames.dtype == np.uint8 else x.float()


def psnr_per_frame(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """PSNR in dB of every frame: ``(T, H, W, 3)`` -> ``(T,)``, ``(N, T, H, W, 3)`` -> ``(N, T)``.

    Identical frames give ``inf``.
    """
    p, r, lead = _as_frames(pred, ref)
    out = np.empty(len(p), dtype=np.float64)
    for start in range(0, len(p), _CHUNK_FRAMES):
        sl = slice(start, start + _CHUNK_FRAMES)
        scores = peak_signal_noise_ratio(
            _to_tensor(p[sl]), _to_tensor(r[sl]), data_range=1.0, reduction="none", dim=(1, 2, 3)
        )
        out[sl] = scores.double().numpy()
    return out.reshape(lead)


def ssim_per_frame(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """SSIM of every frame (torchmetrics defaults, RGB): ``(T, H, W, 3)`` -> ``(T,)``, or ``(N, T)``."""
    p, r, lead = _as_frames(pred, ref)
    if min(p.shape[1:3]) < 11:
        raise NCError(f"SSIM needs frames of at least 11x11 pixels (its window), got {p.shape[1:3]}")
    out = np.empty(len(p), dtype=np.float64)
    for start in range(0, len(p), _CHUNK_FRAMES):
        sl = slice(start, start + _CHUNK_FRAMES)
        scores = structural_similarity_index_measure(
            _to_tensor(p[sl]), _to_tensor(r[sl]), data_range=1.0, reduction="none"
        )
        out[sl] = scores.double().numpy()
    return out.reshape(lead)


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean over frames (and clips) of the per-frame PSNR in dB; ``math.inf`` if any frame is exact."""
    return float(np.mean(psnr_per_frame(pred, ref)))


def ssim(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean over frames (and clips) of the per-frame SSIM; 1.0 for identical clips."""
    return float(np.mean(ssim_per_frame(pred, ref)))
