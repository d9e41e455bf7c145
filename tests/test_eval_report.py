"""`ncomp eval`: scoring generated clips against a dataset, reports, known answers end to end."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuralcomputer.data.terminal.build import render_dataset
from neuralcomputer.eval.evaluate import EvalOptions, evaluate_videos
from neuralcomputer.eval.interface import CopyFirstFrame
from neuralcomputer.eval.report import jsonable, markdown
from neuralcomputer.eval.run import evaluate_models, generate_for_dataset
from neuralcomputer.eval.videos import VideoSet, write_frames_npz
from tests.helpers import make_cast

NCOMP = str(Path(sys.executable).with_name("ncomp"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    casts = root / "casts"
    casts.mkdir()
    for n in range(3):
        events = [(0.0, "o", "user@ncomp:~$ ")]
        t = 0.2
        for ch in f"echo run{n}":
            events.append((t, "o", ch))
            t += 0.1
        events.append((t, "o", f"\r\nrun{n}\r\n" + "".join(f"line {i} of output {n}\r\n" for i in range(4)) + "user@ncomp:~$ "))
        make_cast(casts / f"s{n}.cast", events, cols=40, rows=8)
    render_dataset([casts], root / "ds", progress=False)
    return root / "ds"


def test_identical_videos_score_perfectly(dataset, tmp_path):
    ref = VideoSet.open(dataset)
    for clip_id in ref.ids():
        write_frames_npz(tmp_path / f"{clip_id}.npz", ref.frames(clip_id))
    report = evaluate_videos(tmp_path, dataset, EvalOptions(tesseract=False), progress=False)
    assert report["clips"] == len(ref.ids())
    assert report["psnr"] == math.inf and report["ssim"] == pytest.approx(1.0)
    assert report["ocr_grid"] == {"char_acc": 1.0, "line_acc": 1.0}
    assert report["ocr_grid_gt"]["char_acc"] == pytest.approx(1.0)
    assert report["ocr_tesseract"] is None and "no-tesseract" in report["reasons"]["ocr_tesseract"]
    assert report["lpips"] is None and report["reasons"]["lpips"].startswith("unavailable: no weights")
    assert report["fvd"] is None and report["reasons"]["fvd"].startswith("unavailable")
    assert jsonable(report)["psnr"] == "inf"


def test_copy_first_frame_scores_below_the_oracle(dataset, tmp_path):
    generated = generate_for_dataset(CopyFirstFrame(), dataset, tmp_path / "gen", split=None, progress=False)
    report = evaluate_videos(generated, dataset, EvalOptions(tesseract=False), progress=False)
    assert report["psnr"] < 60 and report["ssim"] < 1.0
    assert report["ocr_grid_gt"]["char_acc"] < 1.0


def test_resumed_generation_keeps_only_clips_the_same_model_made(dataset, tmp_path):
    """A rerun into the same folder keeps the clips it made (resumable) but regenerates those another
    model made there: scoring them as this model's would report the other model's figures."""
    out = tmp_path / "gen"
    generate_for_dataset(CopyFirstFrame(), dataset, out, split=None, progress=False)
    first = sorted(out.glob("*.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in first}
    generate_for_dataset(CopyFirstFrame(), dataset, out, split=None, progress=False)
    assert {p: p.stat().st_mtime_ns for p in first} == stamps  # same maker: nothing redone
    generate_for_dataset(CopyFirstFrame(), dataset, out, split=None, tier="semantic", progress=False)
    assert {p: p.stat().st_mtime_ns for p in first} != stamps  # another caption tier: made again


@pytest.mark.slow
def test_tesseract_metric_on_identical_clips(dataset, tmp_path):
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract not installed")
    ref = VideoSet.open(dataset)
    clip_id = ref.ids()[0]
    write_frames_npz(tmp_path / f"{clip_id}.npz", ref.frames(clip_id))
    report = evaluate_videos(tmp_path, dataset, EvalOptions(), progress=False)
    assert report["ocr_tesseract"] == {"char_acc": 1.0, "line_acc": 1.0}  # same frames, same reading


def test_reports_and_curves(dataset, tmp_path):
    models = [("run/step-100", CopyFirstFrame()), ("run/step-200", CopyFirstFrame())]
    evaluate_models(models, dataset, tmp_path, options=EvalOptions(tesseract=False), split=None, progress=False)
    data = json.loads((tmp_path / "report.json").read_text())
    for key in ("psnr", "ssim", "lpips", "fvd", "ocr_tesseract", "ocr_grid", "reasons", "per_clip"):
        assert key in data
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "model-00" / "frames-worst.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "| PSNR (dB) |" in md and "40.77" in md and "n/a" in md


def test_markdown_marks_unavailable_metrics():
    md = markdown({"clips": 1, "psnr": math.inf, "ssim": 1.0, "lpips": None, "reasons": {"lpips": "unavailable: no weights"}})
    assert "| PSNR (dB) | inf | 40.77 |" in md and "unavailable: no weights" in md


def test_cli_eval_videos_and_model(dataset, tmp_path):
    ref = VideoSet.open(dataset)
    pred = tmp_path / "pred"
    for clip_id in ref.ids():
        frames = ref.frames(clip_id).copy()
        frames[:, ::7] //= 2  # dim every 7th pixel row: a small error that leaves the text legible
        write_frames_npz(pred / f"{clip_id}.npz", frames)
    proc = subprocess.run([NCOMP, "eval", "videos", "--pred", str(pred), "--ref", str(dataset), "--out",
                           str(tmp_path / "r1"), "--no-tesseract"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    headline = json.loads(proc.stdout)
    assert 20 < headline["psnr"] < 80 and headline["ocr_grid_gt"]["char_acc"] == pytest.approx(1.0)
    proc = subprocess.run([NCOMP, "eval", "--model", "builtin:reference-oracle", "--data", str(dataset), "--split", "all",
                           "--out", str(tmp_path / "r2"), "--no-tesseract"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r2" / "report.json").read_text())["psnr"] == "inf"
    proc = subprocess.run([NCOMP, "eval", "videos", "--pred", str(tmp_path / "nothing"), "--ref", str(dataset),
                           "--out", str(tmp_path / "r3")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_mismatched_frame_size_is_a_clear_error(dataset, tmp_path):
    ref = VideoSet.open(dataset)
    clip_id = ref.ids()[0]
    write_frames_npz(tmp_path / f"{clip_id}.npz", np.zeros((5, 10, 10, 3), np.uint8))
    from neuralcomputer.errors import NCError

    with pytest.raises(NCError, match=clip_id):
        evaluate_videos(tmp_path, dataset, EvalOptions(tesseract=False), progress=False)


def test_desktop_clips_get_plus15_and_cursor_hit_rate(tmp_path):
    """A desktop-style reference (records with action_times, payloads with the logged pointer)."""
    from neuralcomputer.data.dataset import clip_record, write_manifest
    from neuralcomputer.data.desktop.cursor import composite_cursor, cursor_sprite

    sprite = cursor_sprite()
    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, size=(120, 160, 3), dtype=np.uint8)
    pointer = np.array([[20 + 4 * t, 30 + 2 * t] for t in range(30)], dtype=np.int16)
    frames = np.stack([composite_cursor(background, x, y, sprite) for x, y in pointer])
    root = tmp_path / "desk"
    (root / "clips").mkdir(parents=True)
    with open(root / "clips" / "d0.npz", "wb") as f:
        np.savez(f, frames_delta=np.concatenate([frames[:1], np.diff(frames, axis=0)]).astype(np.uint8),
                 frame_index=np.arange(30, dtype=np.int32), text=np.array([""] * 30), cursor=np.zeros((30, 3), np.int16),
                 pointer=pointer)
    write_manifest(root / "manifest.jsonl", [clip_record(
        id="d0", session="s", source="x", split="test", variant="desktop", fps=15, width=160, height=120, frames=30,
        grid=None, captions={"semantic": "", "regular": "", "detailed": ""}, path="clips/d0.npz", action_times=[0.4, 1.0])])
    pred = tmp_path / "pred"
    write_frames_npz(pred / "d0.npz", frames)
    report = evaluate_videos(pred, root, EvalOptions(tesseract=False), progress=False)
    assert report["gui_plus15"]["psnr"] == math.inf and report["gui_plus15"]["clips"] == 1
    assert report["cursor_hit_rate"][2] == 1.0
    assert report["gui_plus15"]["fvd"] is None and report["reasons"]["gui_plus15.fvd"].startswith("unavailable")
    frozen = np.repeat(frames[:1], 30, axis=0)  # a model whose cursor never moves
    write_frames_npz(pred / "d0.npz", frozen)
    report = evaluate_videos(pred, root, EvalOptions(tesseract=False), progress=False)
    assert report["cursor_hit_rate"][20] < 0.5 and report["gui_plus15"]["psnr"] < 60
