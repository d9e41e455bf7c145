"""CellGen, the cell-token CPU model of CLIGen: exact tile codec, caption layout, copy prior, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcomputer.data.terminal.captions import CaptionContext, TemplateCaptioner, new_screen_lines
from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.data.terminal.render import FrameRenderer
from neuralcomputer.errors import NCError
from neuralcomputer.models.cellgen import (
    NO_CHAR,
    PAD,
    CellGenNet,
    compose_frames,
    layout_inputs,
    switch_times,
)
from neuralcomputer.models.tile_codec import TileCodec
from neuralcomputer.pipelines.cells import sample_grid


def _screen(text: str, cols: int = 20, rows: int = 6) -> tuple[np.ndarray, str]:
    term = Terminal(cols, rows)
    term.feed(text)
    return FrameRenderer(cols, rows).render(term).copy(), term.text()


def test_the_codec_round_trips_frames_bit_for_bit(tmp_path):
    frame, text = _screen("$ ls\r\n\x1b[1;31merror\x1b[0m: \x1b[7mgone\x1b[0m\r\n$ ")
    codec = TileCodec.rendered()
    added = codec.extend([frame], [text])
    assert added >= 3  # bold red letters, reverse video, the cursor block: not default-style tiles
    ids = codec.encode(frame)
    assert ids.shape == (6, 20) and np.array_equal(codec.decode(ids), frame)
    assert codec.text(ids).split("\n")[1].startswith("error: gone")
    codec.save(tmp_path)
    again = TileCodec.load(tmp_path)
    assert np.array_equal(again.encode(frame), ids) and again.chars == codec.chars


def test_an_unknown_tile_becomes_the_nearest_known_one():
    codec = TileCodec.rendered()
    frame = codec.decode(np.array([[codec.char_tile("A"), codec.char_tile("b")]]))
    noisy = frame.astype(int)
    noisy[2:4, 2:4] += 9
    assert codec.text(codec.encode(np.clip(noisy, 0, 255).astype(np.uint8))) == "Ab"
    with pytest.raises(NCError, match="not a grid"):
        codec.encode(frame[:-1])


def test_switch_times_compose_the_clip_back():
    rng = np.random.default_rng(0)
    first = rng.integers(0, 5, (3, 4))
    final = rng.integers(0, 5, (3, 4))
    switch = rng.integers(0, 6, (3, 4))
    grids = compose_frames(first, final, switch, 6)
    assert np.array_equal(compose_frames(first, final, switch_times(grids), 6), grids)


def _caption(first: str, last: str) -> str:
    ctx = CaptionContext(commands=["seq 3"], intents=[], task="", first_text=first, last_text=last, new_lines=[],
                         full_screen=False)
    return TemplateCaptioner().detailed(ctx)


def test_the_caption_layout_places_each_quoted_character_in_its_cell():
    codec = TileCodec.rendered()
    first_frame, first_text = _screen("a\r\nb\r\nc\r\nd\r\ne\r\n$ ", rows=6)
    last_frame, last_text = _screen("a\r\nb\r\nc\r\nd\r\ne\r\n$ seq 3\r\n1\r\n2\r\n3\r\n$ ", rows=6)
    caption = _caption(first_text, last_text)
    assert "scrolls up 4 lines" in caption
    shifted, canvas = layout_inputs(codec.encode(first_frame), caption, codec.char_tile)
    assert codec.text(shifted).split("\n")[0].strip() == "e"  # the first frame moved up 4 rows
    assert (canvas[0] == NO_CHAR).all()
    placed = "\n".join("".join(codec.chars[i] for i in row) for row in np.where(canvas < 0, 0, canvas))
    assert (canvas[1, 7:] == PAD).all()  # past "$ seq 3": the quoted row is replaced by blanks
    assert placed.split("\n")[1:5] == [f"{s:<20}" for s in ("$ seq 3", "1", "2", "3")]


def test_an_untrained_model_copies_what_it_is_given():
    """The copy prior: before any training the model's last screen is the scrolled first frame with the
    caption's characters pasted where it places them, i.e. the trivial baselines are its starting point."""
    torch.manual_seed(0)
    codec = TileCodec.rendered()
    first_frame, first_text = _screen("$ ", rows=4)
    last_frame, last_text = _screen("$ echo hi\r\nhi\r\n$ ", rows=4)
    net = CellGenNet(len(codec), 8, dim=32, layers=1, heads=2)
    final, switch = sample_grid(net, codec, codec.encode(first_frame), _caption(first_text, last_text), steps=2)
    assert codec.text(final).split("\n")[:3] == [f"{s:<20}" for s in ("$ echo hi", "hi", "$")]
    assert switch.shape == (4, 20)
    again, _ = sample_grid(net, codec, codec.encode(first_frame), _caption(first_text, last_text), steps=2)
    assert np.array_equal(final, again)  # argmax decoding: the same inputs give the same screen
    without, _ = sample_grid(net, codec, codec.encode(first_frame), "The user types `echo hi`.", steps=1)
    assert np.array_equal(without, codec.encode(first_frame))  # nothing placed: copy the first frame


def test_an_untrained_model_draws_a_regular_captions_hints_where_they_likely_stand():
    """Regular captions name the command and the last new line, never where: read against the first
    screen's prompt (``parse_regular``), the copy prior draws both in their rows; without hints nothing."""
    torch.manual_seed(0)
    codec = TileCodec.rendered()
    first_frame, first_text = _screen("$ ", rows=4)
    last_frame, last_text = _screen("$ echo hi\r\nhi\r\n$ ", rows=4)
    ctx = CaptionContext(commands=["echo hi"], intents=[], task="", first_text=first_text, last_text=last_text,
                         new_lines=new_screen_lines(first_text, last_text), full_screen=False)
    caption = TemplateCaptioner().regular(ctx)
    assert caption == "The user runs `echo hi`. The terminal shows output: 2 new lines, the last reading `hi`."
    codec.extend([first_frame], [first_text])  # the cursor's tile, known as a trained codec knows it
    net = CellGenNet(len(codec), 8, dim=32, layers=1, heads=2)
    first = codec.encode(first_frame)
    final, _ = sample_grid(net, codec, first, caption, steps=1, regular_hints=True)
    assert codec.text(final).split("\n")[:3] == [f"{s:<20}" for s in ("$ echo hi", "hi", "")]
    assert np.array_equal(sample_grid(net, codec, first, caption, steps=1)[0], first)


def test_a_timed_caption_bounds_each_rows_switch_frames():
    """``Timing: line 1 from 0.20 s to 0.27 s; ...``: every changed cell of a timed row switches in its
    row's window, whatever the (untrained) network guesses; rows it does not time keep the guess."""
    from neuralcomputer.data.terminal.captions import RowTiming, timing_sentence

    torch.manual_seed(0)
    codec = TileCodec.rendered()
    first_frame, first_text = _screen("$ ", rows=4)
    _, last_text = _screen("$ echo hi\r\nhi\r\n$ ", rows=4)
    caption = _caption(first_text, last_text)
    timing = (RowTiming(0, 0, 3, 4), RowTiming(1, 2, 6, 6))
    timed = caption.replace(" From line", " " + timing_sentence(timing, 15.0) + " From line")
    for timing_input in (False, True):
        net = CellGenNet(len(codec), 8, dim=32, layers=1, heads=2, timing_input=timing_input)
        first = codec.encode(first_frame)
        final, free = sample_grid(net, codec, first, caption)
        final_t, switch = sample_grid(net, codec, first, timed, fps=15.0)
        assert np.array_equal(final, final_t)  # timing moves frames, never text
        changed = first != final
        assert ((switch[0] >= 3) & (switch[0] <= 4))[changed[0]].all()
        assert (switch[1:3][changed[1:3]] == 6).all()
        assert np.array_equal(switch[3], free[3])  # row 4 is not timed
        untimed, _ = sample_grid(net, codec, first, timed)  # no fps: the network's own timing
        assert np.array_equal(untimed, final)


def test_the_model_overfits_one_change(tmp_path):
    """A few dozen steps on one clip learn what the copy prior cannot: the cursor's new place."""
    from neuralcomputer.train.cells import CellClips, cell_loss, make_batch

    torch.manual_seed(0)
    codec = TileCodec.rendered()
    first_frame, first_text = _screen("$ ", rows=4)
    last_frame, last_text = _screen("$ echo hi\r\nhi\r\n$ ", rows=4)
    codec.extend([first_frame, last_frame], [first_text, last_text])
    first, final = codec.encode(first_frame), codec.encode(last_frame)
    clips = CellClips(["c"], first[None], final[None], np.full((1, 4, 20), 3), [{"detailed": _caption(first_text, last_text)}], 8)
    net = CellGenNet(len(codec), 8, dim=32, layers=1, heads=2)
    before = sample_grid(net, codec, first, clips.captions[0]["detailed"])[0]
    assert not np.array_equal(before, final)  # the cursor block is nowhere in the caption
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        loss, _ = cell_loss(net, make_batch(clips, np.array([0, 0]), ["detailed", "detailed"], codec, 4096, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    final_pred, switch = sample_grid(net, codec, first, clips.captions[0]["detailed"])
    assert np.array_equal(final_pred, final) and (switch[final != first] == 3).all()


def test_the_runtime_serves_a_cellgen_model_in_hybrid_mode(tmp_path):
    """A CellGen model directory loads as a terminal NeuralComputer; in hybrid mode the real shell's
    lines reach the screen through the caption (here by the copy prior alone: an untrained network)."""
    import shutil

    from neuralcomputer.config import preset_config
    from neuralcomputer.eval.grid_ocr import GridOCR
    from neuralcomputer.pipelines.cells import CellPipeline
    from neuralcomputer.runtime.computer import NeuralComputer

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    torch.manual_seed(0)
    m = preset_config("cligen-cells")["model"]
    m["net"] |= {"dim": 32, "layers": 1, "heads": 2}
    codec = TileCodec.rendered()
    model = CellPipeline(CellGenNet(len(codec), m["num_frames"], **m["net"]), codec, m).save(tmp_path / "model")
    computer = NeuralComputer.load(model, hybrid=True)
    assert computer.kind == "terminal" and computer.fps == 15
    computer.reset()
    frames = computer.step({"type": "command", "text": "echo hello world; seq 3"}).frames
    assert len(frames) == m["num_frames"] - 1
    lines = [line.rstrip() for line in GridOCR().read(frames[-1]).split("\n")]
    assert lines[1:5] == ["hello world", "1", "2", "3"]
    # the hybrid probe: command after command, real screen vs the model's last frame, row by row
    from neuralcomputer.eval.probes import probe_hybrid

    result = probe_hybrid(computer, ["seq 30", "python3 -c '1/0'"])  # a scroll, then a traceback
    computer.close()
    assert result["lines_exact"] == 1.0 and result["lines"] >= 24 + 6


def test_the_detailed_caption_fixes_every_cells_character_and_other_tiers_none():
    from neuralcomputer.pipelines.cells import required_chars

    codec = TileCodec.rendered()
    first_frame, first_text = _screen("a\r\nb\r\nc\r\nd\r\ne\r\n$ ", rows=6)
    last_frame, last_text = _screen("a\r\nb\r\nc\r\nd\r\ne\r\n$ seq 3\r\n1\r\n2\r\n3\r\n$ ", rows=6)
    codec.extend([first_frame, last_frame], [first_text, last_text])  # the cursor block: a tile of " "
    first = codec.encode(first_frame)
    caption = _caption(first_text, last_text)
    shifted, _ = layout_inputs(first, caption, codec.char_tile)
    required = required_chars(first, shifted, caption, codec.chars)
    assert ["".join(row).rstrip() for row in required] == [line.rstrip() for line in last_text.split("\n")]
    assert (required_chars(first, shifted, "The user types `seq 3`.", codec.chars) == "").all()
    same = "The user types `true`. The screen stays the same, ending with `$`."
    assert ["".join(row).rstrip() for row in required_chars(first, first, same, codec.chars)] == \
        [line.rstrip() for line in first_text.split("\n")]


def test_switch_frames_are_made_coherent_along_a_row():
    from neuralcomputer.pipelines.cells import coherent_switch, isotonic

    assert isotonic(np.array([5, 6, 40, 8, 9])).tolist() == [5, 6, 9, 9, 9]  # one late cell does not drag
    assert isotonic(np.array([30, 30, 5, 30, 30])).tolist() == [30] * 5  # an early hole is filled
    first = np.zeros((2, 5), dtype=np.int64)
    final = np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    switch = np.array([[10, 12, 3, 14, 15], [7, 1, 9, 2, 4]])
    out = coherent_switch(first, final, switch)
    assert (np.diff(out[0]) >= 0).all() and out[0, 0] == 10 and out[0, -1] == 15
    assert np.array_equal(out[1], switch[1])  # a row that does not change keeps its (unused) frames


def test_typed_rows_show_the_prompt_then_the_command_key_by_key():
    """A timed row ending in a command the caption names: the prompt appears when the row first changes,
    the command's characters one by one to the row's last change; a clip that ends mid-command counts its
    start; rows without a command keep the network's frames."""
    from neuralcomputer.data.terminal.captions import RowTiming, ScreenChange
    from neuralcomputer.pipelines.cells import _typed_length, typed_rows

    assert _typed_length("root@ncomp:~# ls -la", ("ls -la", "cd x")) == 6
    assert _typed_length("root@ncomp:~# touch a/", ("touch a/b.md",)) == 8  # cut mid-command
    assert _typed_length(">>> 4 * 7", ("4 * 7",)) == 5
    assert _typed_length("total 4", ("ls",)) == 0 and _typed_length("xls", ("ls",)) == 0  # not after a space
    first = np.zeros((3, 12), dtype=np.int64)
    final = first.copy()
    final[0, :8] = 1  # "$ echo x" typed on row 0; row 1 is output
    final[1, :3] = 2
    switch = np.full((3, 12), 9)
    change = ScreenChange(0, 0, ("$ echo x", "out"))
    out = typed_rows(first, final, switch, (RowTiming(0, 0, 2, 12), RowTiming(1, 1, 14, 14)), change, ("echo x",))
    assert out[0, :2].tolist() == [2, 2]  # the prompt "$ "
    typed = out[0, 2:8]
    assert typed[-1] == 12 and (np.diff(typed) > 0).all() and typed[0] > 2  # keys, one after another
    assert (out[1] == 9).all() and (out[2] == 9).all()  # output row: not typed; untimed row untouched
    # at a measured typing rate the keys count back from the last one (a pause after the prompt is free)
    paced = typed_rows(first, final, switch, (RowTiming(0, 0, 2, 12),), change, ("echo x",), key_frames=1.5)
    assert paced[0, 2:8].tolist() == [4, 6, 8, 9, 10, 12] and paced[0, 0] == 2
