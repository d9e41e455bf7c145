"""The paper's OCR metric (hand-computed cases), grid OCR (exact on renders) and Tesseract."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralcomputer.data.terminal.clips import ClipOptions, iter_clips
from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.data.terminal.render import THEMES, FrameRenderer
from neuralcomputer.errors import NCError
from neuralcomputer.eval.grid_ocr import REPLACEMENT, GridOCR
from neuralcomputer.eval.ocr import (
    TesseractOCR,
    char_accuracy,
    line_accuracy,
    normalise_ocr_text,
    ocr_clip_scores,
    sample_frame_indices,
)
from tests.helpers import real_cast

ASCII = "".join(chr(c) for c in range(0x20, 0x7F))

needs_tesseract = pytest.mark.skipif(not TesseractOCR.available(), reason="tesseract is not installed")


@pytest.fixture(scope="module")
def grid() -> GridOCR:
    return GridOCR()


def render(text: str, cols: int = 80, rows: int = 24, theme: str = "dark", cursor: bool = False) -> tuple[np.ndarray, str]:
    """Frame and ground-truth text of a terminal fed ``text``."""
    terminal = Terminal(cols, rows)
    terminal.feed(text)
    frame = FrameRenderer(cols, rows, theme=theme, draw_cursor=cursor).render(terminal).copy()
    return frame, terminal.text()


# -- the paper's metric ---------------------------------------------------------------------------


def test_char_accuracy_hand_computed():
    assert char_accuracy(["abc"], ["abc"]) == 1.0
    assert char_accuracy(["abc"], ["abd"]) == pytest.approx(1 - 1 / 3)  # one substitution
    assert char_accuracy(["ab", "cd"], ["abcd"]) == pytest.approx(1 - 1 / 5)  # "ab\ncd": the newline is a char
    assert char_accuracy(["ab", "cd"], ["ab", "cd", "ef"]) == pytest.approx(1 - 3 / 5)  # "\nef" inserted
    assert char_accuracy(["kitten"], ["sitting"]) == pytest.approx(1 - 3 / 6)
    assert char_accuracy(["abc"], ["x" * 50]) == 0.0  # clipped at 0
    assert char_accuracy(["abc"], []) == 0.0  # blank reading of a non-empty screen


def test_char_accuracy_empty_references():
    assert char_accuracy([], []) == 1.0
    assert char_accuracy([], ["a"]) == 0.0
    assert char_accuracy([], ["a", "b"]) == 0.0


def test_line_accuracy_hand_computed():
    assert line_accuracy(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert line_accuracy(["a", "b", "c"], ["a", "x", "c"]) == pytest.approx(2 / 3)
    assert line_accuracy(["a", "b", "c"], ["b", "c"]) == 0.0  # by position: a dropped line shifts the rest
    assert line_accuracy(["a", "b"], ["a", "b", "extra"]) == 1.0  # extra predicted lines are not penalised
    assert line_accuracy(["a", "b", "c", "d"], ["a"]) == 0.25
    assert line_accuracy([], []) == 1.0
    assert line_accuracy([], ["a"]) == 0.0


@pytest.mark.parametrize("t", range(1, 13))
def test_sample_frame_indices(t: int):
    idx = sample_frame_indices(t, 5)
    assert idx == sorted(set(idx)) and idx[0] == 0 and idx[-1] == t - 1
    assert len(idx) == min(t, 5)
    assert all(0 <= i < t for i in idx)


def test_sample_frame_indices_hand_computed():
    assert sample_frame_indices(0) == []
    assert sample_frame_indices(3) == [0, 1, 2]
    assert sample_frame_indices(6) == [0, 1, 2, 4, 5]  # linspace 0, 1.25, 2.5, 3.75, 5 (2.5 rounds to even)
    assert sample_frame_indices(9) == [0, 2, 4, 6, 8]
    assert sample_frame_indices(12) == [0, 3, 6, 8, 11]  # 0, 2.75, 5.5, 8.25, 11
    assert sample_frame_indices(75) == [0, 18, 37, 56, 74]  # a 5 s clip at 15 fps
    assert sample_frame_indices(10, 1) == [0]


def test_normalise_ocr_text():
    assert normalise_ocr_text("  a   b  \n\n   c\t\td \n") == ["a b", "c d"]
    assert normalise_ocr_text("$ ls -la\r\nTotal 4\n   \n") == ["$ ls -la", "Total 4"]
    assert normalise_ocr_text("Hello, World!") == ["Hello, World!"]  # case and punctuation kept
    assert normalise_ocr_text("") == [] and normalise_ocr_text("\n \n\t\n") == []


# -- grid OCR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("theme", list(THEMES))
def test_grid_ocr_reads_every_ascii_glyph_in_every_style(grid: GridOCR, theme: str):
    styles = ["", "\x1b[1m", "\x1b[7m", "\x1b[1;7m", "\x1b[31;42m", "\x1b[1;35m", "\x1b[4m", "\x1b[1;4;36m",
              "\x1b[38;2;250;200;0;48;2;20;0;80m", "\x1b[30;47m"]
    text = "".join(f"{style}{ASCII[:80]}\r\n{ASCII[80:]}\x1b[0m\r\n" for style in styles)
    frame, truth = render(text, theme=theme)
    assert grid.read(frame) == truth


def test_grid_ocr_reads_non_ascii_glyphs(grid: GridOCR):
    frame, truth = render("┌─┬─┐ │x│ └─┴─┘ ├┤ ✔ ✓ ✗ ➜ ❯ → … — · « » ± á é ő ű Ñ ß Ω λ Ж ░▒▓█▀▄▌▐ ● ■ ⚠\r\n"
                          "\x1b[7m▌▐▀▄ ✔\x1b[0m \x1b[1;33m╭──╮ ╰──╯ ┃━┃\x1b[0m")
    assert grid.read(frame) == truth


def test_grid_ocr_reads_glyphs_the_font_lacks_as_replacement(grid: GridOCR):
    frame, _ = render("a中b😀c\ue0b0d")
    assert grid.read_lines(frame)[0] == f"a{REPLACEMENT}b{REPLACEMENT}c{REPLACEMENT}d"


def test_grid_ocr_reads_the_glyph_under_the_block_cursor(grid: GridOCR):
    frame, truth = render("$ echo hello\x1b[5D", cursor=True)
    assert grid.read(frame) == truth == "$ echo hello" + "\n" * 23


def test_grid_ocr_is_theme_independent_without_a_theme():
    reader = GridOCR(theme=None)
    for theme in THEMES:
        frame, truth = render(f"\x1b[7m{ASCII}\x1b[0m and \x1b[32mgreen\x1b[0m", theme=theme)
        assert reader.read(frame) == truth


def test_grid_ocr_grid_shape(grid: GridOCR):
    frame, truth = render("small grid", cols=12, rows=3)
    assert frame.shape == (3 * 17, 12 * 8, 3)
    assert grid.read(frame) == truth == "small grid\n\n"
    assert grid.read_lines(frame) == ["small grid", "", ""]
    with pytest.raises(NCError, match="not a"):
        grid.read(frame[:-3])
    with pytest.raises(NCError, match="not a"):
        GridOCR(cols=13).read(frame)
    with pytest.raises(NCError, match="uint8"):
        grid.read(frame.astype(np.float32))


def test_grid_ocr_other_font_size():
    terminal = Terminal(20, 4)
    terminal.feed("size 16: " + ASCII[:10])
    frame = FrameRenderer(20, 4, font_size=16).render(terminal)
    assert GridOCR(font_size=16).read(frame) == terminal.text()


def test_grid_ocr_cache_gives_the_same_reading(grid: GridOCR):
    frame, truth = render("\x1b[1mcached\x1b[0m reading")
    grid.clear_cache()
    assert grid.read(frame) == grid.read(frame) == truth
    assert GridOCR(cache_size=0).read(frame) == truth


def test_grid_ocr_blank_and_noise_read_as_blank(grid: GridOCR):
    blank = np.full((24 * 17, 80 * 8, 3), 12, np.uint8)
    assert grid.read(blank) == "\n" * 23
    noise = np.random.default_rng(0).integers(0, 256, blank.shape, dtype=np.uint8)
    # iid noise fits no glyph well: the reader declines to guess on most cells
    assert sum(c != " " for c in grid.read(noise)) < 0.1 * 80 * 24


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=ASCII, min_size=1, max_size=30),
                          st.sampled_from(["", "1", "7", "4", "31", "1;32", "44", "33;41", "1;7;36"])),
                min_size=1, max_size=8))
def test_grid_ocr_reads_random_styled_text(grid: GridOCR, runs: list[tuple[str, str]]):
    frame, truth = render("".join(f"\x1b[{sgr}m{text}\x1b[0m" for text, sgr in runs), cols=40, rows=8)
    assert grid.read(frame) == truth


@pytest.mark.parametrize("name", ["adamheins__vim-highlight-match-under-cursor__demo__demo.cast",
                                  "hydrargyrum__asciinario__demo.asciicast"])
def test_grid_ocr_on_real_casts_matches_ground_truth(grid: GridOCR, name: str):
    path = real_cast(name)
    scores = [ocr_clip_scores(None, clip.frames[clip.frame_index], grid, ref_texts=[clip.text(t) for t in
                                                                                     range(clip.num_frames)])
              for clip in list(iter_clips(path, ClipOptions()))[:6]]
    assert scores and np.mean([s["char_acc"] for s in scores]) > 0.999
    assert np.mean([s["line_acc"] for s in scores]) > 0.99


# -- clip scores ----------------------------------------------------------------------------------


def _clip(n: int = 7) -> tuple[np.ndarray, list[str]]:
    terminal, renderer = Terminal(40, 6), FrameRenderer(40, 6)
    frames, texts = [], []
    for i in range(n):
        terminal.feed(f"$ echo step {i}\r\nstep {i}\r\n")
        frames.append(renderer.render(terminal).copy())
        texts.append(terminal.text())
    return np.stack(frames), texts


def test_ocr_clip_scores_identical_and_ground_truth(grid: GridOCR):
    frames, texts = _clip()
    same = ocr_clip_scores(frames, frames, grid, grid)
    assert same["char_acc"] == same["line_acc"] == 1.0 and same["frames"] == [0, 2, 3, 4, 6]
    assert same["mode"] == "ocr" and len(same["per_frame"]) == 5
    truth = ocr_clip_scores(None, frames, grid, ref_texts=texts)
    assert truth["char_acc"] == truth["line_acc"] == 1.0 and truth["mode"] == "ground_truth"
    shorter = ocr_clip_scores(frames, frames[:3], grid)  # T = min of the two lengths
    assert shorter["frames"] == [0, 1, 2]


def test_ocr_clip_scores_blank_prediction_scores_zero(grid: GridOCR):
    frames, texts = _clip()
    blank = np.zeros_like(frames) + frames[0, 0, 0]
    scores = ocr_clip_scores(frames, blank, grid)
    assert scores["char_acc"] == 0.0 and scores["line_acc"] == 0.0
    assert ocr_clip_scores(None, blank, grid, ref_texts=texts)["char_acc"] == 0.0
    with pytest.raises(NCError):
        ocr_clip_scores(None, blank, grid)


# -- Tesseract ------------------------------------------------------------------------------------


def test_tesseract_missing_binary_is_a_clear_error():
    reader = TesseractOCR(binary="/nonexistent/tesseract")
    assert not TesseractOCR.available("/nonexistent/tesseract")
    with pytest.raises(NCError, match="tesseract not found"):
        reader.read(np.zeros((17, 8, 3), np.uint8))


SCREEN = ("$ ls -la /usr/local\r\ntotal 40\r\ndrwxr-xr-x 10 root root 4096 Nov 29 02:58 bin\r\n"
          "$ git status\r\nOn branch main\r\nYour branch is up to date with 'origin/main'.\r\n"
          "$ python3 -c 'print(12 + 7)'\r\n19\r\n$ echo Hello, World\r\nHello, World\r\n$ ")


@needs_tesseract
@pytest.mark.slow
def test_tesseract_reads_a_clean_render_and_agrees_with_grid_ocr(grid: GridOCR):
    frame, truth = render(SCREEN, theme="light")
    ref = normalise_ocr_text(truth)
    tess = normalise_ocr_text(TesseractOCR(psm=6).read(frame))
    assert char_accuracy(ref, tess) > 0.9
    # grid OCR is exact; Tesseract sits within its measured ceiling of it
    assert normalise_ocr_text(grid.read(frame)) == ref
    assert char_accuracy(normalise_ocr_text(grid.read(frame)), tess) > 0.9


@needs_tesseract
@pytest.mark.slow
def test_tesseract_pipeline_identical_and_blank():
    frame, truth = render(SCREEN)
    reader = TesseractOCR()
    frames = frame[None]
    assert ocr_clip_scores(frames, frames, reader)["char_acc"] == 1.0  # deterministic reading
    blank = np.zeros_like(frames) + frame[0, 0]
    assert reader.read(blank[0]).strip() == ""
    assert ocr_clip_scores(None, blank, reader, ref_texts=[truth])["char_acc"] == 0.0
    assert char_accuracy(normalise_ocr_text(truth), normalise_ocr_text(reader.read(frame))) > 0.8


# -- ceilings and bench ---------------------------------------------------------------------------


def test_ceilings_of_grid_ocr_on_a_cast(tmp_path, capsys):
    from neuralcomputer.eval.ceilings import main, measure_ceilings
    from tests.helpers import make_cast

    cast = make_cast(tmp_path / "s.cast", [(0.5 * i, "o", f"$ echo {i}\r\n{i}\r\n") for i in range(12)], cols=30, rows=6)
    result = measure_ceilings(cast, readers=["grid"], workers=2)
    assert result["readers"]["grid"]["char_acc"] == 1.0 and result["readers"]["grid"]["frames"] > 0
    assert main([str(cast), "--readers", "grid"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["readers"]["grid"]["line_acc"] == 1.0
    with pytest.raises(NCError, match="unknown reader"):
        measure_ceilings(cast, readers=["easyocr"])


def test_bench_ocr_on_synthetic_frames():
    from neuralcomputer.bench.ocr import bench_ocr, synthetic_frames

    frames, texts = synthetic_frames(6)
    figures = list(bench_ocr(frames, n_frames=1, grid_frames=6, psms=(), texts=texts, pin=False))
    assert [f["reader"] for f in figures] == ["grid", "grid"]
    assert all(f["fps"] > 0 and f["char_acc"] == 1.0 for f in figures)
