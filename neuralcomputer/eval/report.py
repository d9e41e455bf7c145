"""Write evaluation reports: ``report.json`` (stable keys), ``report.md`` (the paper's layout, its
numbers beside ours) and PNG plots (frame grids of the best and worst clips, curves over steps)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from neuralcomputer.data.dataset import atomic_write_bytes

# The paper's numbers (CLIGen at 13 px; the arithmetic probe; GUIWorld's best injection mode).
PAPER = {
    "psnr": 40.77, "ssim": 0.989, "ocr_tesseract.char_acc": 0.54, "ocr_tesseract.line_acc": 0.31,
    "arithmetic.native": 0.04, "arithmetic.reprompt": 0.83, "gui.ssim": 0.863, "gui.fvd": 14.5,
}


def jsonable(value: Any) -> Any:
    """Report values as JSON: infinities become the strings "inf"/"-inf", NaN becomes None."""
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def _get(report: dict, dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def markdown(report: dict, title: str = "Evaluation report") -> str:
    """The report as markdown tables, with the paper's figures in a column beside ours."""
    rows = [("PSNR (dB)", "psnr", 2), ("SSIM", "ssim", 3), ("LPIPS", "lpips", 3), ("FVD", "fvd", 2),
            ("OCR char acc (Tesseract, paper metric)", "ocr_tesseract.char_acc", 3),
            ("OCR exact-line acc (Tesseract, paper metric)", "ocr_tesseract.line_acc", 3),
            ("OCR char acc (grid OCR)", "ocr_grid.char_acc", 3),
            ("OCR exact-line acc (grid OCR)", "ocr_grid.line_acc", 3),
            ("char acc vs ground-truth text (grid OCR)", "ocr_grid_gt.char_acc", 3),
            ("exact-line acc vs ground-truth text (grid OCR)", "ocr_grid_gt.line_acc", 3),
            ("char acc on the cells that change (new text; grid OCR vs ground truth)", "ocr_grid_gt.changed_char_acc", 3)]
    reasons = report.get("reasons", {})
    lines = [f"# {title}", "", f"Clips scored: {report.get('clips')}  ", f"Generated: `{report.get('pred')}`  ",
             f"Reference: `{report.get('ref')}`", "", "| metric | ours | paper (CLIGen) | note |", "|---|---:|---:|---|"]
    for label, key, digits in rows:
        ours = _get(report, key)
        note = reasons.get(key.split(".")[0], "") if ours is None else ""
        lines.append(f"| {label} | {_fmt(ours, digits)} | {_fmt(PAPER.get(key), digits)} | {note} |")
    probes = report.get("probes") or {}
    if probes:
        lines += ["", "## Probes", "", "| probe | ours | paper |", "|---|---:|---:|"]
        for name, value in probes.items():
            paper = PAPER.get(f"arithmetic.{'reprompt' if 'reprompt' in name else 'native'}") if "arithmetic" in name else None
            lines.append(f"| {name} | {_fmt(value)} | {_fmt(paper)} |")
    lines += ["", "Metrics: frames in [0, 1]; PSNR of a clip from its MSE over all frames, SSIM the mean over frames, both then averaged over clips; OCR as the paper's "
              "appendix B.2 (K=5 evenly spaced frames, lines stripped, spaces collapsed, empty lines dropped, "
              "char acc = 1 - Levenshtein/|ref|, exact-line acc by position). A metric shown as n/a was not "
              "computed; the note says why."]
    return "\n".join(lines) + "\n"


def frame_grid(pred: np.ndarray, ref: np.ndarray, indices: list[int]) -> np.ndarray:
    """Rows of (reference | generated | difference heat-map) for the given frame indices."""
    from matplotlib import colormaps

    heat = colormaps["magma"]
    rows = []
    for i in indices:
        diff = np.abs(pred[i].astype(np.int16) - ref[i].astype(np.int16)).mean(axis=-1) / 255.0
        heatmap = (heat(np.clip(diff * 4, 0, 1))[..., :3] * 255).astype(np.uint8)  # x4: small errors visible
        sep = np.full((ref.shape[1], 4, 3), 128, np.uint8)
        rows.append(np.concatenate([ref[i], sep, pred[i], sep, heatmap], axis=1))
    gap = np.full((4, rows[0].shape[1], 3), 128, np.uint8)
    return np.concatenate([x for row in rows for x in (row, gap)][:-1], axis=0)


def write_report(out: str | Path, report: dict, pred=None, ref=None, title: str = "Evaluation report") -> dict:
    """Write ``report.json``, ``report.md`` and, given the video sets, best/worst frame grids.

    Returns the JSON-ready report.
    """
    from neuralcomputer.eval.ocr import sample_frame_indices

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = jsonable(report)
    atomic_write_bytes(out / "report.json", json.dumps(data, indent=2, sort_keys=True).encode())
    atomic_write_bytes(out / "report.md", markdown(report, title).encode())
    per_clip = report.get("per_clip") or []
    if pred is not None and ref is not None and per_clip:
        key = "ocr_grid_gt" if "ocr_grid_gt" in per_clip[0] else "ocr_grid"
        ranked = sorted(per_clip, key=lambda c: (c[key]["char_acc"], c["psnr"]))
        for name, clip in (("worst", ranked[0]), ("best", ranked[-1])):
            p, r = pred.frames(clip["id"]), ref.frames(clip["id"])
            t = min(len(p), len(r))
            grid = frame_grid(p[:t], r[:t], sample_frame_indices(t, 3))
            Image.fromarray(grid).save(out / f"frames-{name}.png")
    return data


def plot_curves(reports: list[tuple[int, dict]], out: str | Path) -> Path:
    """Metric curves over training steps (one report per checkpoint): the paper's Finding 3 plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s, _ in reports]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("psnr", "PSNR (dB)"),):
        values = [_get(r, key) for _, r in reports]
        axes[0].plot(steps, [v if v is not None and not math.isinf(v) else np.nan for v in values], "o-", label=label)
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("PSNR (dB)")
    for key, label in (("ssim", "SSIM"), ("ocr_grid.char_acc", "char acc (grid)"),
                       ("ocr_grid.line_acc", "line acc (grid)"), ("ocr_tesseract.char_acc", "char acc (Tesseract)"),
                       ("ocr_tesseract.line_acc", "line acc (Tesseract)")):
        values = [_get(r, key) for _, r in reports]
        if any(v is not None for v in values):
            axes[1].plot(steps, [np.nan if v is None else v for v in values], "o-", label=label)
    axes[1].set_xlabel("training step")
    axes[1].set_ylim(0, 1.02)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(out) / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
