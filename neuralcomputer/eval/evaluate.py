"""Score generated clips against reference clips: every metric of the paper, and ours beside them.

Two steps, as in DiT's ``sample_ddp.py``: generation writes artifacts (``<id>.npz``), scoring reads
them. Metrics per clip pair (matched by id, T = the shorter length):

* ``psnr``, ``ssim``: torchmetrics over frames in [0, 1], averaged over frames, then clips;
* ``lpips`` (AlexNet, [-1, 1]) and ``fvd`` (r3d18, 16 frames, 112x112): only with weights given;
* ``ocr_tesseract``: the paper's OCR metric (K=5 frames, Tesseract on both sides);
* ``ocr_grid``: the same protocol read by grid OCR (column-exact, fast);
* ``ocr_grid_gt``: grid OCR of the generated frames against the stored ground-truth screen text;
* desktop clips (records with ``action_times``, payloads with ``pointer``): ``gui_plus15`` (the
  paper's "+15" PSNR/SSIM) and ``cursor_hit_rate`` at 2/5/10/20 px.

A metric that cannot be computed is ``None`` with its reason in ``reasons``; never a made-up number.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from neuralcomputer.errors import NCError
from neuralcomputer.eval.videos import VideoSet


@dataclass
class EvalOptions:
    """What to compute.

    Attributes:
        tesseract: run the paper's Tesseract OCR (slow: ~1 s per frame, K=5 frames per side).
        lpips_weights, fvd_weights: a file or folder with the pretrained weights (or None to look in
            the standard cache locations; nothing is ever downloaded).
        k_frames: frames per clip for OCR (the paper: 5).
        limit: score at most this many clips (None: all).
    """

    tesseract: bool = True
    lpips_weights: str | None = None
    fvd_weights: str | None = None
    k_frames: int = 5
    limit: int | None = None
    font_size: int = 13
    theme: str = "dark"


@dataclass
class _Readers:
    grid: Callable[[np.ndarray], str]
    tesseract: Callable[[np.ndarray], str] | None
    reasons: dict[str, str] = field(default_factory=dict)


def _readers(options: EvalOptions) -> _Readers:
    from neuralcomputer.eval.grid_ocr import GridOCR
    from neuralcomputer.eval.ocr import TesseractOCR

    reasons: dict[str, str] = {}
    tesseract = None
    if not options.tesseract:
        reasons["ocr_tesseract"] = "skipped: --no-tesseract"
    elif not TesseractOCR.available():
        reasons["ocr_tesseract"] = "unavailable: the tesseract binary is not installed"
    else:
        tesseract = TesseractOCR().read
    grid = GridOCR(font_size=options.font_size, theme=options.theme)
    return _Readers(grid=grid.read, tesseract=tesseract, reasons=reasons)


def _ocr_means(ref_texts: list[str], pred_texts: list[str]) -> dict[str, float]:
    """The paper's OCR scores of one clip: char and exact-line accuracy averaged over its frames."""
    from neuralcomputer.eval.ocr import frame_text_scores

    chars, lines = frame_text_scores(ref_texts, pred_texts)
    return {"char_acc": float(np.mean(chars)), "line_acc": float(np.mean(lines))}


def score_pair(pred: np.ndarray, ref: np.ndarray, ref_texts: list[str] | None, readers: _Readers,
               options: EvalOptions, lpips_model=None, terminal: bool = True) -> dict:
    """All per-clip metrics for one (generated, reference) pair of ``(T, H, W, 3)`` uint8 clips.

    OCR metrics only for terminal clips (``terminal``): a desktop frame has no character grid.
    """
    from neuralcomputer.eval.image_metrics import psnr, ssim
    from neuralcomputer.eval.ocr import sample_frame_indices

    if pred.shape[1:] != ref.shape[1:]:
        raise NCError(f"frame size {pred.shape[1:3]} differs from the reference {ref.shape[1:3]}")
    if len(pred) != len(ref):  # scoring the first frames only would pass off a stub as a clip
        raise NCError(f"{len(pred)} frames; expected {len(ref)}, as many as the reference clip")
    t = len(ref)
    pred, ref = pred[:t], ref[:t]
    scores: dict = {"frames": t, "psnr": psnr(pred, ref), "ssim": ssim(pred, ref)}
    if lpips_model is not None:
        from neuralcomputer.eval.lpips import lpips_video

        scores["lpips"] = lpips_video(pred, ref, lpips_model)
    if not terminal:
        return scores
    idx = sample_frame_indices(t, options.k_frames)
    grid_pred = [readers.grid(pred[i]) for i in idx]
    scores["ocr_grid"] = _ocr_means([readers.grid(ref[i]) for i in idx], grid_pred)
    if ref_texts is not None:
        scores["ocr_grid_gt"] = _ocr_means([ref_texts[i] for i in idx], grid_pred)
        last = grid_pred[list(idx).index(t - 1)] if t - 1 in list(idx) else readers.grid(pred[t - 1])
        scores["ocr_grid_gt"]["changed_char_acc"] = changed_char_acc(ref_texts[0], ref_texts[t - 1], last)
    if readers.tesseract is not None:
        # Tesseract runs as a subprocess per frame: read the 2K frames on all cores at once.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            texts = list(pool.map(readers.tesseract, [ref[i] for i in idx] + [pred[i] for i in idx]))
        ref_t, pred_t = texts[: len(idx)], texts[len(idx):]
        scores["ocr_tesseract"] = _ocr_means(ref_t, pred_t)
    return scores


def _grid(text: str) -> list[str]:
    lines = text.split("\n")
    width = max((len(line) for line in lines), default=0)
    return [line.ljust(width) for line in lines]


def changed_char_acc(first: str, last: str, pred_last: str) -> float | None:
    """Accuracy on the new text alone: of the cells whose character differs between the first and the
    last true screen, the share the predicted last screen reads right (position by position; None when
    no cell changes). Copying the first frame scores 0 by construction."""
    a, b, p = _grid(first), _grid(last), _grid(pred_last)
    rows = max(len(a), len(b))
    width = max(len(a[0]) if a else 0, len(b[0]) if b else 0)
    a, b, p = ([*g, *[""] * (rows - len(g))] for g in (a, b, p))
    changed = ok = 0
    for ra, rb, rp in zip(a, b, p, strict=False):
        ra, rb, rp = ra.ljust(width), rb.ljust(width), rp.ljust(width)
        for ca, cb, cp in zip(ra, rb, rp, strict=False):
            if ca != cb:
                changed += 1
                ok += cp == cb
    return ok / changed if changed else None


def _cell_size(font_size: int) -> tuple[int, int]:
    """(cell height, cell width) in pixels of our renders at ``font_size``."""
    from neuralcomputer.data.terminal.render import GlyphAtlas

    atlas = GlyphAtlas(font_size)
    return atlas.cell_height, atlas.cell_width


def _mean(values: list[float]) -> float | None:
    if not values:
        return None
    if any(math.isinf(v) for v in values):
        finite = [v for v in values if not math.isinf(v)]
        # identical clips give inf: the mean is inf only when every clip is identical
        return math.inf if not finite else float(np.mean(finite))
    return float(np.mean(values))


def _load_lpips(options: EvalOptions, reasons: dict):
    from neuralcomputer.eval.lpips import LPIPS
    from neuralcomputer.eval.weights import find_lpips_weights

    found = find_lpips_weights(options.lpips_weights)
    if found is None:
        reasons["lpips"] = "unavailable: no weights (pass --lpips-weights or put alexnet-owt-7be5be79.pth and alex.pth in the torch hub cache)"
        return None
    return LPIPS.from_weights(*found)


def _load_fvd(options: EvalOptions, reasons: dict):
    from neuralcomputer.eval.fvd import R3D18
    from neuralcomputer.eval.weights import find_weights

    path = find_weights("r3d18", options.fvd_weights)
    if path is None:
        reasons["fvd"] = "unavailable: no weights (pass --fvd-weights or put r3d_18-b3b3357e.pth in the torch hub cache)"
        return None
    return R3D18.from_weights(path)


def _fvd(model, pred16: list[np.ndarray], ref16: list[np.ndarray], key: str, reasons: dict) -> float | None:
    """FVD over 16-frame clips; None (with the reason under ``key``) without weights or enough clips."""
    from neuralcomputer.eval.fvd import fvd

    if model is None:
        reasons.setdefault(key, reasons.get("fvd", "unavailable: no weights"))
        return None
    if len(ref16) < 2:
        reasons[key] = "unavailable: FVD needs at least 2 clips per side"
        return None
    return fvd(pred16, ref16, model)


def evaluate_videos(pred: str | VideoSet, ref: str | VideoSet, options: EvalOptions = EvalOptions(),
                    progress: bool = True) -> dict:
    """Score every generated clip that has a reference with the same id.

    Returns the report dict (stable keys): ``clips``, ``psnr``, ``ssim``, ``lpips``, ``fvd``,
    ``ocr_tesseract``, ``ocr_grid``, ``ocr_grid_gt`` (each ``{"char_acc", "line_acc"}`` or None),
    ``reasons`` (why a metric is None), ``per_clip``, ``missing`` (generated ids with no reference).
    """
    pred = pred if isinstance(pred, VideoSet) else VideoSet.open(pred)
    ref = ref if isinstance(ref, VideoSet) else VideoSet.open(ref)
    ids = [i for i in pred.ids() if i in ref.records]
    missing = [i for i in pred.ids() if i not in ref.records]
    if options.limit is not None:
        ids = ids[: options.limit]
    if not ids:
        raise NCError(f"no generated clip in {pred.root} has a reference with the same id in {ref.root}")
    readers = _readers(options)
    reasons = dict(readers.reasons)
    lpips_model = _load_lpips(options, reasons)
    fvd_model = _load_fvd(options, reasons)
    cell = None if ref.is_dataset else _cell_size(options.font_size)
    per_clip: list[dict] = []
    # FVD needs every clip at once: keep only the 16 frames it reads (and only with weights).
    fvd_clips: dict[str, tuple[list, list]] = {"fvd": ([], []), "gui_plus15.fvd": ([], [])}
    for clip_id in tqdm(ids, desc="eval", unit="clip", disable=not progress):
        p, r = pred.frames(clip_id), ref.frames(clip_id)
        record = ref.records[clip_id]
        if cell is None:
            terminal = record.get("grid") is not None
        else:  # a plain folder: terminal renders are a whole number of cells
            terminal = r.shape[1] % cell[0] == 0 and r.shape[2] % cell[1] == 0
        try:
            scores = score_pair(p, r, ref.texts(clip_id), readers, options, lpips_model, terminal)
        except NCError as exc:
            raise NCError(f"{pred.path(clip_id)}: {exc}") from exc
        t = min(len(p), len(r))
        if "action_times" in record:
            scores.update(_gui_scores(p[:t], r[:t], record, ref))
        per_clip.append({"id": clip_id, **scores})
        if fvd_model is not None:
            _collect_fvd_frames(p[:t], r[:t], record, fvd_clips)
    report: dict = {"clips": len(per_clip), "pred": str(pred.root), "ref": str(ref.root), "missing": missing}
    report["psnr"] = _mean([c["psnr"] for c in per_clip])
    report["ssim"] = _mean([c["ssim"] for c in per_clip])
    report["lpips"] = _mean([c["lpips"] for c in per_clip]) if lpips_model is not None else None
    report["fvd"] = _fvd(fvd_model, *fvd_clips["fvd"], "fvd", reasons)
    any_terminal = any("ocr_grid" in c for c in per_clip)
    for key in ("ocr_tesseract", "ocr_grid", "ocr_grid_gt"):
        rows = [c[key] for c in per_clip if key in c]
        if rows:
            report[key] = {m: float(np.mean([row[m] for row in rows])) for m in ("char_acc", "line_acc")}
            changed = [row["changed_char_acc"] for row in rows if row.get("changed_char_acc") is not None]
            if key == "ocr_grid_gt":  # the mean over clips whose screen changes at all
                report[key]["changed_char_acc"] = float(np.mean(changed)) if changed else None
                report[key]["changed_clips"] = len(changed)
        else:
            report[key] = None
            reasons.setdefault(key, "unavailable: the reference has no ground-truth screen text" if any_terminal
                               else "not computed: no terminal clips (OCR needs a character grid)")
    gui = [c["gui_plus15"] for c in per_clip if c.get("gui_plus15", {}).get("frames")]
    if gui:
        report["gui_plus15"] = {"psnr": _mean([g["psnr"] for g in gui]), "ssim": _mean([g["ssim"] for g in gui]),
                                "clips": len(gui), "fvd": _fvd(fvd_model, *fvd_clips["gui_plus15.fvd"],
                                                               "gui_plus15.fvd", reasons)}
    hits = [c["cursor_hit_rate"] for c in per_clip if "cursor_hit_rate" in c]
    if hits:
        report["cursor_hit_rate"] = {r: float(np.mean([h[r] for h in hits])) for r in hits[0]}
    report["reasons"] = reasons
    report["per_clip"] = per_clip
    return report


def _collect_fvd_frames(pred: np.ndarray, ref: np.ndarray, record: dict, into: dict) -> None:
    """Append one clip's 16 FVD frames per side, and its FVD+15 frames for desktop clips."""
    from neuralcomputer.eval.fvd import subsample_or_pad
    from neuralcomputer.eval.gui import plus15_frame_indices, plus15_fvd_frames

    into["fvd"][0].append(subsample_or_pad(pred))
    into["fvd"][1].append(subsample_or_pad(ref))
    if "action_times" in record:
        idx = plus15_frame_indices(record["action_times"], float(record["fps"]), len(ref))
        if idx.size:
            into["gui_plus15.fvd"][0].append(plus15_fvd_frames(pred, idx))
            into["gui_plus15.fvd"][1].append(plus15_fvd_frames(ref, idx))


def _gui_scores(pred: np.ndarray, ref: np.ndarray, record: dict, refs: VideoSet) -> dict:
    """The "+15" protocol and, when the payload logs the pointer, the cursor hit rate of one clip."""
    from neuralcomputer.data.desktop.cursor import cursor_sprite
    from neuralcomputer.eval.gui import cursor_hit_rate, plus15_scores

    out: dict = {"gui_plus15": plus15_scores(pred, ref, record["action_times"], float(record["fps"]))}
    pointer = refs.array(record["id"], "pointer")
    if pointer is not None:
        out["cursor_hit_rate"] = cursor_hit_rate(pred, pointer[: len(pred)], cursor_sprite())
    return out
