"""What every training task shares: per-step random generators seeded by (seed, step, rank), so a
resumed run repeats exactly what an uninterrupted one does, and the frame scores validation reports.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

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


def cache_dir(data: Path, run: Path, name: str) -> Path:
    """Where a task caches what it derives from a dataset: beside it (``DATA/<name>``, shared by every
    run on it), or in the run (``RUN/cache``) when the dataset is read-only."""
    shared = Path(data) / name
    try:
        shared.mkdir(exist_ok=True)
        probe = shared / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return shared
    except OSError:
        return Path(run) / "cache"
