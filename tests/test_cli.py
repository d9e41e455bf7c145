"""The `ncomp` command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import real_cast

NCOMP = [str(Path(sys.executable).with_name("ncomp"))]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(NCOMP + list(args), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"ncomp {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def test_help_for_every_command():
    for args in (["--help"], ["data", "--help"], ["data", "record", "--help"], ["data", "render", "--help"],
                 ["data", "info", "--help"], ["data", "preview", "--help"], ["bench", "render", "--help"],
                 ["demo", "--help"]):
        out = run(*args).stdout
        assert "Usage:" in out


def test_record_render_info_preview(tmp_path):
    casts, ds = tmp_path / "casts", tmp_path / "ds"
    rec = json.loads(run("data", "record", "--generator", "basic", "--count", "2", "--seed", "3",
                         "--out", str(casts)).stdout.strip().splitlines()[-1])
    assert len(rec["recorded"]) == 2
    summary = json.loads(run("data", "render", str(casts), "--out", str(ds), "--variant", "clean").stdout)
    assert summary["rendered"] == 2 and summary["clips"] >= 2
    info = json.loads(run("data", "info", str(ds), "--json").stdout)
    assert {"clips", "frames", "hours"} <= set(info) and info["clips"] == summary["clips"]
    assert "clips" in run("data", "info", str(ds)).stdout
    video = tmp_path / "s.mp4"
    run("data", "preview", sorted(casts.glob("*.cast"))[0].as_posix(), "--out", str(video))
    import imageio_ffmpeg

    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames > 15 and seconds > 1
    run("data", "preview", str(ds), "--out", str(tmp_path / "clip.mp4"))
    assert (tmp_path / "clip.mp4").stat().st_size > 1000


def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path):
    proc = run("data", "info", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no manifest" in proc.stderr
    proc = run("data", "record", "--generator", "nope", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "unknown generator" in proc.stderr
    proc = run("data", "render", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run("data", "render", str(tmp_path), "--out", str(tmp_path / "o"), "--shard", "5/2", check=False)
    assert proc.returncode == 2 and "0 <= K < N" in proc.stderr


def test_render_batch_with_a_bad_file_goes_on(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "ok.cast").write_text('{"version": 2, "width": 20, "height": 3}\n[0.1, "o", "hi"]\n')
    (folder / "bad.cast").write_text("not json at all\n")
    proc = run("data", "render", str(folder), "--out", str(tmp_path / "ds"))
    assert json.loads(proc.stdout)["rendered"] == 1
    assert "skipped:" in proc.stderr and "bad.cast:1:" in proc.stderr


@pytest.mark.slow
def test_bench_render_prints_json_figures():
    cast = real_cast("00cex__frontend-project-44__demo.cast")
    lines = [json.loads(x) for x in run("bench", "render", "--cast", str(cast), "--naive-frames", "10").stdout.splitlines()]
    figures = {(x["figure"], x.get("renderer")) for x in lines}
    assert ("render_fps", "atlas-full-redraw") in figures and ("render_fps", "naive-pillow-per-cell") in figures
    speedup = next(x for x in lines if x["figure"] == "speedup_vs_naive")
    assert speedup["atlas_full_redraw"] > 1
    assert any(x["figure"] == "memory" and x["peak_rss_mb"] > 0 for x in lines)
