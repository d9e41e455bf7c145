"""`ncomp demo`: the bundled models served in the browser, with zero arguments.

``ncomp demo --record DIR`` instead records real sessions in a pty (a shell session, the arithmetic
probe in a Python REPL, a TUI), renders them into a captioned clip dataset, and writes MP4s and a
contact sheet a person can look at: the data side, end to end, with no model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from neuralcomputer.data.dataset import dataset_info, load_manifest, read_clip_payload
from neuralcomputer.data.terminal.build import BuildOptions, render_dataset
from neuralcomputer.data.terminal.preview import preview_cast

DEMO_GENERATORS = ("basic", "python-math", "interactive")
# The models trained here on CPU and committed (each folder: config.json, safetensors, first_frame.png,
# README.md, the model card). Found beside the package in a source checkout.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"


def bundled_models(root: Path = BUNDLED_DIR) -> dict[str, Path]:
    """Name -> model directory of every bundled model under ``root``."""
    from neuralcomputer.errors import NCError

    found = {p.name: p for p in sorted(root.glob("*")) if (p / "config.json").is_file()} if root.is_dir() else {}
    if not found:
        raise NCError(f"{root}: no bundled models (a source checkout has models/cligen-tiny and "
                      "models/guiworld-tiny); serve your own with: ncomp serve --model NAME=RUN_OR_DIR")
    return found


def contact_sheet(dataset: Path, out: Path, per_clip: int = 3, max_clips: int = 6) -> Path:
    """A PNG grid: rows are clips, columns evenly spaced frames of each."""
    rows = []
    for record in load_manifest(dataset)[:max_clips]:
        frames = read_clip_payload(dataset / record["path"])["frames"]
        picks = np.linspace(0, len(frames) - 1, per_clip).round().astype(int)
        rows.append(np.concatenate([np.pad(frames[i], ((2, 2), (2, 2), (0, 0)), constant_values=128)
                                    for i in picks], axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    Image.fromarray(sheet).save(out)
    return out


def run_demo(out: Path, seed: int = 0) -> None:
    """Record, render, preview. Prints what it made and where."""
    from neuralcomputer.data.terminal.recorder import record_many

    out = Path(out)
    casts = out / "casts"
    for name in DEMO_GENERATORS:
        print(f"recording a real `{name}` session ...", flush=True)
        record_many(name, 1, seed, casts, progress=False)
    dataset = out / "dataset"
    summary = render_dataset([casts], dataset, BuildOptions(variant="general"), progress=False)
    for path in sorted(casts.glob("*.cast")):
        video = out / "videos" / f"{path.stem}.mp4"
        frames = preview_cast(path, video)
        print(f"video: {video} ({frames} frames at 15 fps)")
    sheet = contact_sheet(dataset, out / "contact-sheet.png")
    info = dataset_info(dataset)
    print(f"dataset: {dataset} ({info['clips']} clips, {info['frames']} frames, {summary.dropped or 'none'} dropped)")
    print(f"contact sheet: {sheet}")
    first = load_manifest(dataset)[0]
    print("captions of the first clip:")
    print(json.dumps(first["captions"], indent=2, ensure_ascii=False))
    _baseline_report(dataset, out / "eval-copy-first-frame")


def _baseline_report(dataset: Path, out: Path) -> None:
    """Score the "nothing changes" baseline with the evaluation suite (what a model must beat)."""
    from neuralcomputer.eval.evaluate import EvalOptions
    from neuralcomputer.eval.interface import CopyFirstFrame
    from neuralcomputer.eval.run import evaluate_models

    report = evaluate_models([("builtin:copy-first-frame", CopyFirstFrame())], dataset, out,
                             options=EvalOptions(tesseract=False), split=None, progress=False)
    grid = report["ocr_grid_gt"] or {}
    print(f"baseline (copy the first frame) on these clips: PSNR {report['psnr']:.2f} dB, SSIM {report['ssim']:.3f}, "
          f"char acc {grid.get('char_acc', float('nan')):.3f}, line acc {grid.get('line_acc', float('nan')):.3f} "
          f"(grid OCR vs ground truth); report: {out / 'report.md'}")
