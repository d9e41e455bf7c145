"""What every training task shares: per-step random generators seeded by (seed, step, rank), so a
resumed run repeats exactly what an uninterrupted one does, and the frame scores validation reports.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, step, rank]).integers(2**62)))


def frame_scores(pred: np.ndarray, ref: np.ndarray, text: bool = True) -> dict[str, float]:
    """PSNR, SSIM and (terminal frames, ``text``) grid-OCR char/line accuracy of ``(T, H, W, 3)`` uint8
    frames against references."""
    from neuralcomputer.eval.image_metrics import psnr, ssim
    from neuralcomputer.eval.ocr import frame_text_scores

    scores = {"psnr": float(min(psnr(pred, ref), 99.0)), "ssim": float(ssim(pred, ref))}
    if text:
        ocr = _grid_ocr()
        chars, lines = frame_text_scores([ocr.read(f) for f in ref], [ocr.read(f) for f in pred])
        scores |= {"char_acc": float(np.mean(chars)), "line_acc": float(np.mean(lines))}
    return scores


@functools.cache
def _grid_ocr():
    from neuralcomputer.eval.grid_ocr import GridOCR

    return GridOCR()
