"""Glyph-atlas rendering: geometry, glyph fidelity, colours, cursor, wide glyphs, incremental == full."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcomputer.data.terminal.asciicast import CastReader
from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.data.terminal.render import THEMES, FrameRenderer
from neuralcomputer.errors import NCError
from tests.helpers import real_cast

DARK = THEMES["dark"]


def _cell(frame: np.ndarray, r: FrameRenderer, x: int, y: int) -> np.ndarray:
    ch, cw = r.cell_size
    return frame[y * ch : (y + 1) * ch, x * cw : (x + 1) * cw]


def test_geometry_at_13px_and_blank_screen_is_background():
    t = Terminal(80, 24)
    r = FrameRenderer(80, 24, font_size=13, draw_cursor=False)
    frame = r.render(t)
    ch, cw = r.cell_size
    assert (ch, cw) == (r.atlas.cell_height, r.atlas.cell_width)
    assert 7 <= cw <= 9 and 14 <= ch <= 18  # DejaVu Sans Mono at 13 px
    assert frame.shape == (24 * ch, 80 * cw, 3) and frame.dtype == np.uint8
    assert (frame == DARK.background).all()


def test_glyphs_land_in_their_cells_and_differ():
    t = Terminal(10, 2)
    t.feed("Ab\r\n l")
    r = FrameRenderer(10, 2, draw_cursor=False)
    frame = r.render(t)
    a, b, blank, ell = _cell(frame, r, 0, 0), _cell(frame, r, 1, 0), _cell(frame, r, 2, 0), _cell(frame, r, 1, 1)
    assert (blank == DARK.background).all()
    for glyph in (a, b, ell):
        assert (glyph != DARK.background).any()
        assert glyph.max() == max(DARK.foreground)  # full-coverage pixels reach the text colour
    assert not np.array_equal(a, b) and not np.array_equal(b, ell)
    # the same character always gives the same pixels (the atlas is deterministic)
    t2 = Terminal(10, 2)
    t2.feed("  A")
    assert np.array_equal(_cell(FrameRenderer(10, 2, draw_cursor=False).render(t2), r, 2, 0), a)


def test_colours_reverse_bold_and_cursor():
    t = Terminal(10, 1)
    t.feed("\x1b[38;2;255;0;0mR\x1b[0m\x1b[7m \x1b[0m\x1b[1mB\x1b[0mB")
    r = FrameRenderer(10, 1)
    frame = r.render(t)
    red = _cell(frame, r, 0, 0).reshape(-1, 3)
    assert ((red[:, 0] > 200) & (red[:, 1] < 50)).any()  # truecolour red text
    assert (_cell(frame, r, 1, 0) == DARK.foreground).all()  # reversed blank = foreground block
    assert not np.array_equal(_cell(frame, r, 2, 0), _cell(frame, r, 3, 0))  # bold font differs
    assert (_cell(frame, r, 4, 0) == DARK.cursor).all()  # block cursor on the empty cell after text
    t.feed("\x1b[?25l")
    assert (_cell(r.render(t), r, 4, 0) == DARK.background).all()  # hidden cursor is not drawn


def test_wide_glyph_spans_two_cells():
    t = Terminal(6, 1)
    t.feed("中x")
    r = FrameRenderer(6, 1, draw_cursor=False)
    frame = r.render(t)
    left, right = _cell(frame, r, 0, 0), _cell(frame, r, 1, 0)
    assert (left != DARK.background).any() and (right != DARK.background).any()
    assert (_cell(frame, r, 2, 0) != DARK.background).any()  # the x after it


def test_unknown_theme_and_size_rejected():
    with pytest.raises(NCError, match="unknown theme"):
        FrameRenderer(10, 2, theme="neon")
    with pytest.raises(NCError, match="font size"):
        FrameRenderer(10, 2, font_size=2)


def test_themes_change_the_colours():
    t = Terminal(4, 1)
    t.feed("x")
    light = FrameRenderer(4, 1, theme="light", draw_cursor=False).render(t)
    assert (light[:, -1] == THEMES["light"].background).all()


def test_incremental_rendering_equals_full_redraw_on_a_real_tui_recording():
    path = real_cast("adamheins__vim-highlight-match-under-cursor__demo__demo.cast")  # vim, colours
    with CastReader(path) as reader:
        header = reader.header
        t = Terminal(header.width, header.height)
        incremental = FrameRenderer(header.width, header.height)
        checked = 0
        for i, event in enumerate(reader):
            if event.code != "o":
                continue
            t.feed(event.data)
            frame = incremental.render(t).copy()
            if i % 3 == 0:
                full = FrameRenderer(header.width, header.height).render(t)
                assert np.array_equal(frame, full), f"event {i}: incremental frame differs from a full redraw"
                checked += 1
    assert checked > 10
