"""The `ncomp` command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuralcomputer.demo import BUNDLED_DIR
from tests.cligen_helpers import TINY, make_tiny_dataset
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


@pytest.mark.timeout(600)
def test_train_reuses_the_bundled_tokenizer_unless_asked_and_says_so_first(tmp_path):
    if not (BUNDLED_DIR / "cligen-tiny" / "tokenizer.safetensors").is_file():
        pytest.skip("no bundled cligen-tiny model")
    data = make_tiny_dataset(tmp_path)

    def train(out: Path, *more: str, steps: int = 2, check: bool = True) -> subprocess.CompletedProcess:
        return run("train", "--preset", "cligen-tiny", "--data", str(data), "--out", str(out), "--steps", str(steps),
                   *TINY, "val_every=100", "save_every=100", "threads=1", *more, check=check)

    folder = tmp_path / "run"
    first = train(folder).stderr.splitlines()[0]
    assert first.startswith("tokenizer: the bundled model's") and "cligen-tiny" in first, first
    assert not (folder / "tokenizer").exists()  # nothing trained before the 2 steps asked for
    saved = json.loads((folder / "config.json").read_text())["model"]["tokenizer"]["path"]
    assert Path(saved) == (BUNDLED_DIR / "cligen-tiny").resolve()
    assert "as the run being resumed" in train(folder, steps=3).stderr.splitlines()[0]  # it keeps its tokenizer
    # Asked for (the option, or an override of the tokenizer's training): a new one, trained first.
    for n, ask in enumerate((["--train-tokenizer", "tokenizer_steps=2"], ["tokenizer_steps=2"])):
        new = tmp_path / f"new{n}"
        first = train(new, *ask).stderr.splitlines()[0]
        assert first.startswith(f"tokenizer: a new one, trained first in {new / 'tokenizer'}"), first
        assert (new / "tokenizer" / "model" / "tokenizer.safetensors").is_file()
    refused = train(tmp_path / "x", "--train-tokenizer", f"model.tokenizer.path={BUNDLED_DIR / 'cligen-tiny'}",
                    check=False)
    assert refused.returncode == 2 and "give one of them" in refused.stderr and not (tmp_path / "x").exists()
