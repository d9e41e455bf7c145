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
    bundled = BUNDLED_DIR / "cligen-tiny"
    if not (bundled / "tokenizer.safetensors").is_file() or \
            json.loads((bundled / "config.json").read_text()).get("kind", "cligen") != "cligen":
        pytest.skip("no bundled cligen-tiny model with a cell-ae tokenizer")
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


def test_a_tokenizer_cut_short_goes_on_training_and_presets_without_one_say_so(tmp_path):
    from neuralcomputer.config import preset_config
    from neuralcomputer.demo import bundled_models
    from neuralcomputer.train.tokenizer_choice import choose_tokenizer

    bundled = bundled_models() if (BUNDLED_DIR / "cligen-tiny").is_dir() else {}
    (tmp_path / "cut" / "tokenizer").mkdir(parents=True)  # killed while its tokenizer trained
    config, said = choose_tokenizer(preset_config("cligen-tiny"), tmp_path / "cut", [], train_new=False, bundled=bundled)
    assert said.startswith("tokenizer: a new one") and config["model"]["tokenizer"]["path"] is None
    config, said = choose_tokenizer(preset_config("cell-ae"), tmp_path / "tok", [], train_new=False, bundled=bundled)
    assert said == "tokenizer: cell-ae, trained by this run"


def _one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The command failed with exactly one `error:` line (no traceback, no bare "Aborted!") naming ``words``."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr, proc.stderr[-3000:]
    assert all(w in errors[0] for w in words), errors[0]
    return errors[0]


def test_eval_videos_refuses_unreadable_or_short_predictions_in_one_line(tmp_path):
    from neuralcomputer.eval.videos import VideoSet, write_frames_npz

    ref = make_tiny_dataset(tmp_path)
    clip_id = VideoSet.open(ref).ids()[0]
    frames = VideoSet.open(ref).frames(clip_id)
    cases = {  # what the prediction's file holds -> words its one error line must have
        ".npz": (b"not a zip and not an array", "expected"),  # numpy: "pickled data"
        ".npz ": (b"PK\x03\x04" + bytes(200), "expected"),  # zipfile.BadZipFile
        ".npz  ": (b"", "expected"),  # numpy: EOFError, which click turned into a bare "Aborted!"
        ".mp4": (bytes(range(256)) * 8, "expected"),  # ffmpeg cannot decode it
        ".npz   ": (None, f"2 frames; expected {len(frames)}"),  # a 2-frame prediction of a longer clip
    }
    for n, (suffix, (content, words)) in enumerate(cases.items()):
        pred = tmp_path / f"pred{n}"
        pred.mkdir()
        path = pred / f"{clip_id}{suffix.strip()}"
        if content is None:
            write_frames_npz(path, frames[:2])
        else:
            path.write_bytes(content)
        proc = run("eval", "videos", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / f"r{n}"),
                   "--no-tesseract", check=False)
        _one_error_line(proc, path.name, words)


def _huge_png(path: Path, size: int = 20000) -> Path:
    """A valid size x size black PNG of a few kilobytes (1 bit per pixel, rows of zeros compress away)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(1 + (size + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(size)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_sample_refuses_huge_images_and_blank_captions_and_reads_long_captions_from_a_file(tmp_path):
    import numpy as np
    from PIL import Image

    from tests.runtime_helpers import tiny_terminal_model

    model = tiny_terminal_model(tmp_path / "model")
    first = tmp_path / "first.png"
    Image.fromarray(np.zeros((136, 320, 3), np.uint8)).save(first)

    def sample(*args: str, out: str = "clip.mp4", check: bool = False) -> subprocess.CompletedProcess:
        return run("sample", "--model", str(model), "--out", str(tmp_path / out), *args, check=check)

    _one_error_line(sample("--first-frame", str(_huge_png(tmp_path / "huge.png")), "--caption", "ls"),
                    "huge.png", "20000x20000", "expected")
    for blank in ("", "   ", "\n"):
        _one_error_line(sample("--first-frame", str(first), "--caption", blank), "caption", "expected")
    caption = "The user types `ls`. From line 1 the screen reads:\nroot@ncomp:~# ls"
    (tmp_path / "caption.txt").write_text(caption + "\n")  # as an editor saves it: the last newline is not part of it
    sample("--first-frame", str(first), "--caption", caption, check=True)
    sample("--first-frame", str(first), "--caption-file", str(tmp_path / "caption.txt"), out="file.mp4", check=True)
    assert (tmp_path / "clip.mp4").read_bytes() == (tmp_path / "file.mp4").read_bytes()
    # Over the 128 KiB one argument may hold: read from the file, then held to the model's limit in one line.
    (tmp_path / "long.txt").write_text("x" * 200_000)
    _one_error_line(sample("--first-frame", str(first), "--caption-file", str(tmp_path / "long.txt")),
                    "200000 bytes", "at most 1600")
    _one_error_line(sample("--first-frame", str(first)), "--caption")
    _one_error_line(sample("--first-frame", str(first), "--caption", "ls", "--caption-file",
                           str(tmp_path / "caption.txt")), "--caption")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    _one_error_line(sample("--first-frame", str(first), "--caption-file", str(tmp_path / "latin1.txt")),
                    "latin1.txt", "UTF-8")


def test_render_of_a_folder_without_recordings_says_so(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no recordings here")
    for folder in (empty, tmp_path / "notes"):
        _one_error_line(run("data", "render", str(folder), "--out", str(tmp_path / "ds"), check=False),
                        str(folder), "no recordings")
        assert not (tmp_path / "ds").exists()


def test_record_lists_its_generators():
    assert "--list" in run("data", "record", "--help").stdout
    listed = run("data", "record", "--list").stdout.splitlines()
    assert [line.split(":")[0] for line in listed] == list(__import__(
        "neuralcomputer.data.terminal.generators", fromlist=["GENERATORS"]).GENERATORS)
