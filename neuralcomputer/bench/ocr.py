"""`ncomp bench ocr`: frames/s per core of grid OCR vs Tesseract on 80x24 frames at 13 px.

Frames come from a real 80x24 recording when ../shared has one (rendered on the fly), else from a
synthetic screen of text. Each figure is one dict; the accuracy of each reader on the same frames
(paper char/line accuracy against the stored screen text) is reported beside its speed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neuralcomputer.errors import NCError
from neuralcomputer.eval.ocr import (
    TesseractOCR,
    frame_text_scores,
    sample_frame_indices,
)

DEFAULT_CASTS = ("sysid__rs-env__doc__demo.cast", "hydrargyrum__asciinario__demo.asciicast")  # real, 80x24


def default_frames_source() -> Path | None:
    """The first of :data:`DEFAULT_CASTS` found in the real-casts folder, else ``None``."""
    from neuralcomputer.data.terminal.build import real_casts_dir

    root = real_casts_dir()
    for name in DEFAULT_CASTS:
        if (root / name).is_file():
            return root / name
    return None


def synthetic_frames(n: int, *, cols: int = 80, rows: int = 24, font_size: int = 13,
                     seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``n`` frames of a scrolling shell-like screen of random words: ``(n, H, W, 3)`` uint8 and texts."""
    from neuralcomputer.data.terminal.emulator import Terminal
    from neuralcomputer.data.terminal.render import FrameRenderer

    rng = np.random.default_rng(seed)
    words = ["ls", "-la", "total", "drwxr-xr-x", "user", "staff", "4096", "Nov", "29", "src", "README.md",
             "$", "git", "status", "On", "branch", "main", "python3", "print(x)", "12", "+", "7", "=", "19",
             "error:", "No", "such", "file", "or", "directory", "/usr/local/bin", "OK", "[1/3]", "done."]
    terminal, renderer = Terminal(cols, rows), FrameRenderer(cols, rows, font_size=font_size)
    frames, texts = [], []
    for _ in range(n):
        for _ in range(int(rng.integers(1, 4))):
            line = " ".join(rng.choice(words, size=int(rng.integers(2, 12))))
            colour = int(rng.integers(0, 4))
            terminal.feed((f"\x1b[3{colour + 1}m" if colour else "") + line[: cols - 1] + "\x1b[0m\r\n")
        frames.append(renderer.render(terminal).copy())
        texts.append(terminal.text())
    return np.stack(frames), texts


def _cast_frames(path: Path, n: int, font_size: int) -> tuple[np.ndarray, list[str]]:
    """``n`` distinct frames, evenly spaced over the recording's clips, and their screen texts."""
    from neuralcomputer.data.terminal.clips import ClipOptions, iter_clips

    frames, texts = [], []
    for clip in iter_clips(path, ClipOptions(font_size=font_size)):
        frames.extend(clip.frames)
        texts.extend(clip.texts)
    if not frames:
        raise NCError(f"{path}: no frames rendered")
    idx = np.unique(np.rint(np.linspace(0, len(frames) - 1, min(n, len(frames)))).astype(int))
    return np.stack([frames[i] for i in idx]), [texts[i] for i in idx]


def _accuracy(texts: list[str], truths: list[str]) -> dict:
    chars, lines = frame_text_scores(truths, texts)
    return {"char_acc": round(float(np.mean(chars)), 4), "line_acc": round(float(np.mean(lines)), 4)}


def _timed(read, frames: np.ndarray, before=None) -> tuple[list[str], float]:
    texts, seconds = [], 0.0
    for frame in frames:
        if before is not None:
            before()
        t0 = time.perf_counter()
        texts.append(read(frame))
        seconds += time.perf_counter() - t0
    return texts, seconds


def bench_ocr(frames_source: str | Path | np.ndarray | None = None, n_frames: int = 20, *,
              grid_frames: int = 300, font_size: int = 13, psms: tuple[int, ...] = (3, 6),
              texts: list[str] | None = None, pin: bool = True) -> Iterator[dict]:
    """Frames/s on one core of grid OCR (cold and warm cell cache) and Tesseract, with their accuracy.

    Args:
        frames_source: a recording, an ``(T, H, W, 3)`` uint8 array (with ``texts`` for accuracy),
            or ``None`` for the default real 80x24 cast (synthetic frames when it is absent).
        n_frames: frames Tesseract reads (about 0.3-1 s each).
        grid_frames: frames grid OCR reads (it is fast).
        font_size: font size of the frames.
        psms: Tesseract page segmentation modes to time (3 is the paper's default settings).
        texts: ground-truth screen texts of an array source (accuracy is skipped without them).
        pin: run on one CPU (restored when the generator finishes), so figures are per core.

    Yields:
        ``{"figure": "ocr_fps", "reader", "fps", "frames", ...}`` per reader, then
        ``{"figure": "ocr_speedup", ...}``.
    """
    affinity = _pin_to_one_cpu() if pin else None
    try:
        yield from _bench(frames_source, n_frames, grid_frames, font_size, psms, texts, affinity is not None)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def _pin_to_one_cpu() -> set[int] | None:
    """Pin this process (and the Tesseract it starts) to one CPU; returns the previous affinity."""
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(before)})
        return before
    except (AttributeError, OSError):
        return None


def _bench(frames_source: str | Path | np.ndarray | None, n_frames: int, grid_frames: int, font_size: int,
           psms: tuple[int, ...], texts: list[str] | None, pinned: bool) -> Iterator[dict]:
    from neuralcomputer.eval.grid_ocr import GridOCR

    n = max(n_frames, grid_frames)
    if isinstance(frames_source, np.ndarray):
        frames, truths, source = frames_source, texts, "array"
    else:
        path = Path(frames_source) if frames_source is not None else default_frames_source()
        if path is not None:
            frames, truths = _cast_frames(path, n, font_size)
            source = path.name
        else:
            frames, truths = synthetic_frames(n, font_size=font_size)
            source = "synthetic"
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise NCError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    grid = GridOCR(font_size=font_size)
    rows, cols = grid.grid_shape(frames[0])
    common = {"source": source, "grid": f"{cols}x{rows}", "frame_px": list(frames.shape[1:3]), "font_px": font_size,
              "pinned_to_one_core": pinned}

    def score(read_texts: list[str], idx: list[int]) -> dict:
        return _accuracy(read_texts, [truths[i] for i in idx]) if truths is not None else {}

    grid.read(frames[0])  # build lazily-initialised BLAS state outside the timing
    g_idx = sample_frame_indices(len(frames), grid_frames)
    g_frames = frames[g_idx]
    cold_texts, cold_s = _timed(grid.read, g_frames, before=grid.clear_cache)
    grid.clear_cache()
    warm_texts, warm_s = _timed(grid.read, g_frames)
    grid_fps = len(g_frames) / cold_s
    yield {"figure": "ocr_fps", "reader": "grid", "cache": "cold (cleared before every frame)", "frames": len(g_frames),
           "fps": round(grid_fps, 1), "ms_per_frame": round(1000 * cold_s / len(g_frames), 2),
           **score(cold_texts, g_idx), **common}
    yield {"figure": "ocr_fps", "reader": "grid", "cache": "warm (one reader over the sequence)",
           "frames": len(g_frames), "fps": round(len(g_frames) / warm_s, 1),
           "ms_per_frame": round(1000 * warm_s / len(g_frames), 2), **score(warm_texts, g_idx), **common}
    if not TesseractOCR.available():
        yield {"figure": "ocr_fps", "reader": "tesseract", "fps": None,
               "reason": "unavailable: the tesseract binary is not installed", **common}
        return
    t_idx = sample_frame_indices(len(frames), n_frames)
    t_frames = frames[t_idx]
    for psm in psms:
        reader = TesseractOCR(psm=psm, threads=1)
        tess_texts, tess_s = _timed(reader.read, t_frames)
        tess_fps = len(t_frames) / tess_s
        yield {"figure": "ocr_fps", "reader": reader.name, "frames": len(t_frames), "fps": round(tess_fps, 2),
               "ms_per_frame": round(1000 * tess_s / len(t_frames), 1), **score(tess_texts, t_idx), **common}
        yield {"figure": "ocr_speedup", "reader": reader.name, "grid_cold_vs_tesseract": round(grid_fps / tess_fps, 1),
               **common}
