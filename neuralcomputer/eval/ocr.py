"""The paper's OCR metric (appendix B.2) and its Tesseract reader.

Protocol, exactly as the paper states it: K=5 evenly spaced frames of each clip are read with
Tesseract (default settings); each text is split into lines, every line stripped, inner runs of
whitespace collapsed to one space, empty lines dropped; then

* ``char_acc = max(0, 1 - Levenshtein(s, t) / max(|s|, 1))`` with ``s``, ``t`` the reference and
  generated lines joined, and
* ``line_acc = (1 / N_ref) * #{i : pred_i == ref_i}``, lines compared by position.

The paper does not name the join separator; we join with ``"\\n"`` so that a line break counts as one
character, as it would in the frame's text. Empty references (which the paper leaves open) follow
one rule in both metrics: an empty prediction scores 1.0, anything else 0.0.

Readers are anything with ``read(frame) -> str`` (:class:`TesseractOCR` here, the much faster
:class:`~neuralcomputer.eval.grid_ocr.GridOCR` beside it). Frames are ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image
from rapidfuzz.distance import Levenshtein

from neuralcomputer.errors import NCError

K_FRAMES = 5  # frames per clip the paper reads
_SPACES = re.compile(r"\s+")


class FrameReader(Protocol):
    """Anything that turns an ``(H, W, 3)`` uint8 frame into screen text."""

    def read(self, frame: np.ndarray) -> str:
        """The frame's text, lines separated by ``"\\n"``."""
        ...


def sample_frame_indices(T: int, K: int = K_FRAMES) -> list[int]:
    """``K`` evenly spaced frame indices over ``[0, T-1]`` (all ``T`` frames when ``T <= K``).

    ``np.linspace`` rounded to the nearest index, deduplicated and sorted; ``T = 0`` gives ``[]``.
    """
    if T <= 0:
        return []
    if T <= K:
        return list(range(T))
    return sorted({int(i) for i in np.rint(np.linspace(0, T - 1, K))})


def normalise_ocr_text(text: str) -> list[str]:
    """Lines of ``text``, each stripped, inner whitespace runs collapsed to one space, empty lines dropped.

    Case and punctuation are kept, as in the paper.
    """
    lines = (_SPACES.sub(" ", line.strip()) for line in text.splitlines())
    return [line for line in lines if line]


def char_accuracy(ref_lines: Sequence[str], pred_lines: Sequence[str]) -> float:
    """``max(0, 1 - Levenshtein(s, t) / max(|s|, 1))``, ``s``/``t`` the lines joined by ``"\\n"``.

    An empty reference scores 1.0 against an empty prediction and 0.0 against anything else (the
    formula alone would give ``1 - |t|``, clipped to 0 for any non-empty ``t`` but 1 for ``t == ""``).
    """
    s, t = "\n".join(ref_lines), "\n".join(pred_lines)
    if not s:
        return 1.0 if not t else 0.0
    return max(0.0, 1.0 - Levenshtein.distance(s, t) / max(len(s), 1))


def line_accuracy(ref_lines: Sequence[str], pred_lines: Sequence[str]) -> float:
    """Fraction of reference lines matched exactly by the predicted line at the same position.

    With no reference lines: 1.0 when the prediction has none either, else 0.0 (the paper's
    ``1 / N_ref`` is undefined there; a blank screen predicted as blank is a perfect reading).
    """
    if not ref_lines:
        return 1.0 if not pred_lines else 0.0
    hits = sum(1 for r, p in zip(ref_lines, pred_lines, strict=False) if r == p)
    return hits / len(ref_lines)


class TesseractOCR:
    """Reads frames with the ``tesseract`` binary (one subprocess per frame, PNG on stdin).

    Args:
        psm: page segmentation mode. The paper uses Tesseract's defaults, i.e. 3 (fully automatic);
            6 (one uniform block of text) suits terminal screens better (see ``ceilings.py``).
        lang: traineddata to use.
        scale: upscale the frame by this integer factor (bicubic) before reading. The paper-exact
            path is ``scale=1``, the plain RGB frame.
        threads: OpenMP threads Tesseract may use (``OMP_THREAD_LIMIT``); 1 keeps timings per
            core and lets parallel workers run side by side without oversubscribing.
        timeout: seconds one frame may take.
        binary: the executable (name on ``PATH`` or a path).
    """

    def __init__(self, psm: int = 3, lang: str = "eng", *, scale: int = 1, threads: int | None = 1,
                 timeout: float = 120.0, binary: str = "tesseract") -> None:
        if scale < 1:
            raise NCError(f"tesseract scale must be a positive integer, got {scale}")
        self.psm, self.lang, self.scale, self.timeout = psm, lang, scale, timeout
        self.binary = binary
        self._env = dict(os.environ)
        if threads is not None:
            self._env["OMP_THREAD_LIMIT"] = str(threads)

    @staticmethod
    def available(binary: str = "tesseract") -> bool:
        """Whether the Tesseract executable can be found."""
        return shutil.which(binary) is not None

    @property
    def name(self) -> str:
        """Short label, e.g. ``tesseract-psm3`` or ``tesseract-psm6-x2``."""
        return f"tesseract-psm{self.psm}" + (f"-x{self.scale}" if self.scale != 1 else "")

    def read(self, frame: np.ndarray) -> str:
        """Text Tesseract finds in an ``(H, W, 3)`` uint8 RGB frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise NCError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        image = Image.fromarray(frame, "RGB")
        if self.scale != 1:
            image = image.resize((image.width * self.scale, image.height * self.scale), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        cmd = [self.binary, "stdin", "stdout", "--psm", str(self.psm), "-l", self.lang]
        try:
            done = subprocess.run(cmd, input=buf.getvalue(), capture_output=True, env=self._env,
                                  timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise NCError(f"tesseract not found ({self.binary!r}): install it (Debian: apt-get install "
                          "tesseract-ocr) or skip the Tesseract OCR metric") from exc
        except subprocess.TimeoutExpired as exc:
            raise NCError(f"tesseract took over {self.timeout:.0f} s on one {frame.shape[1]}x{frame.shape[0]} frame") from exc
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise NCError(f"tesseract failed (exit {done.returncode}): {why[-1] if why else 'no message'}")
        return done.stdout.decode("utf-8", errors="replace").replace("\f", "")


def frame_text_scores(ref_texts: Sequence[str], pred_texts: Sequence[str]) -> tuple[list[float], list[float]]:
    """Per-frame (char_acc, line_acc) lists for paired reference/generated screen texts (raw OCR output)."""
    chars, lines = [], []
    for ref, pred in zip(ref_texts, pred_texts, strict=True):
        r, p = normalise_ocr_text(ref), normalise_ocr_text(pred)
        chars.append(char_accuracy(r, p))
        lines.append(line_accuracy(r, p))
    return chars, lines


def ocr_clip_scores(ref_frames: np.ndarray | None, pred_frames: np.ndarray, reader_ref: FrameReader | None = None,
                    reader_pred: FrameReader | None = None, *, ref_texts: Sequence[str] | None = None,
                    k: int = K_FRAMES) -> dict:
    """The paper's OCR scores of one (reference, generated) clip pair.

    Args:
        ref_frames: ``(T_ref, H, W, 3)`` uint8 reference clip, read with ``reader_ref``; may be
            ``None`` when ``ref_texts`` is given.
        pred_frames: ``(T_pred, H, W, 3)`` uint8 generated clip, read with ``reader_pred``
            (default: ``reader_ref``).
        ref_texts: ground-truth screen text per reference frame (``T_ref`` strings). When given,
            it replaces the OCR of the reference frames ("reference text given" mode).
        k: frames sampled per clip (the paper: 5).

    Returns:
        ``{"char_acc", "line_acc"}`` averaged over the sampled frames, ``"frames"`` (the indices),
        ``"per_frame"`` (``[{"t", "char_acc", "line_acc"}]``) and ``"mode"`` (``"ocr"`` or
        ``"ground_truth"``). ``T = min(T_ref, T_pred)``; ``T = 0`` scores ``None``.
    """
    reader_pred = reader_pred or reader_ref
    if reader_pred is None:
        raise NCError("ocr_clip_scores needs a reader for the generated frames")
    if ref_texts is None:
        if ref_frames is None or reader_ref is None:
            raise NCError("ocr_clip_scores needs reference frames and a reader, or ref_texts")
        n_ref = len(ref_frames)
    else:
        n_ref = len(ref_texts)
    t = min(n_ref, len(pred_frames))
    idx = sample_frame_indices(t, k)
    if ref_texts is not None:
        refs = [str(ref_texts[i]) for i in idx]
    else:
        refs = [reader_ref.read(ref_frames[i]) for i in idx]
    preds = [reader_pred.read(pred_frames[i]) for i in idx]
    chars, lines = frame_text_scores(refs, preds)
    return {
        "char_acc": float(np.mean(chars)) if idx else None,
        "line_acc": float(np.mean(lines)) if idx else None,
        "frames": idx,
        "per_frame": [{"t": i, "char_acc": c, "line_acc": ln} for i, c, ln in zip(idx, chars, lines, strict=True)],
        "mode": "ocr" if ref_texts is None else "ground_truth",
    }
