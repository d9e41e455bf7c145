"""VT emulation: the alternate screen and the fixes over plain pyte, on synthetic and real output."""

from __future__ import annotations

from neuralcomputer.data.terminal.asciicast import CastReader
from neuralcomputer.data.terminal.emulator import Terminal, make_vanilla_terminal
from tests.helpers import real_cast

ENTER_ALT, LEAVE_ALT = "\x1b[?1049h", "\x1b[?1049l"


def test_alternate_screen_hides_and_restores_the_shell():
    t = Terminal(20, 4)
    t.feed("$ vim notes\r\n")
    cursor_before = t.cursor()
    t.feed(ENTER_ALT + "\x1b[2J\x1b[H~ editor text")
    assert t.screen.in_alternate_screen
    assert "editor text" in t.text() and "$ vim" not in t.text()
    t.feed(LEAVE_ALT)
    assert not t.screen.in_alternate_screen
    assert "$ vim notes" in t.text() and "editor" not in t.text()
    assert t.cursor() == cursor_before  # 1049 saves and restores the cursor

    # plain pyte leaves the TUI on screen: the reason we extend it
    screen, feed = make_vanilla_terminal(20, 4)
    feed("$ vim notes\r\n" + ENTER_ALT + "\x1b[2J\x1b[H~ editor text" + LEAVE_ALT)
    assert "editor text" in "\n".join(screen.display)


def test_mode_47_switches_without_saving_cursor_and_other_modes_still_apply():
    t = Terminal(20, 3)
    t.feed("main")
    t.feed("\x1b[?47;25lX")  # leave alt (not in it) + hide cursor in one sequence
    assert not t.cursor().visible
    t.feed("\x1b[?47h")
    assert t.text().strip() == ""
    t.feed("\x1b[?47l")
    assert t.text().startswith("mainX")


def test_string_sequences_are_not_drawn_even_when_split():
    t = Terminal(30, 2)
    t.feed("a\x1bP+q544e")  # DCS query (tmux, vim) split across events
    t.feed("\x1b\\b\x1b_apc payload\x1b\\c")
    assert t.text().split("\n")[0] == "abc"


def test_draw_keeps_text_after_zero_width_characters():
    t = Terminal(30, 2)
    t.feed("ok \u200d then more")
    assert t.lines()[0] == "ok  then more"


def test_guarded_handlers_and_benign_sequences():
    t = Terminal(30, 2)
    t.feed("a\x1b[?5nb\x1b[1;2;3Ac\x1b[>4;2md\x1b[2 qe\x1b[22;0;0tf\x1b=g")
    assert t.lines()[0] == "abcdefg"
    assert not any(t.screen.buffer[0][x].underscore for x in range(7))  # CSI > 4;2 m is not SGR
    assert t.unhandled_count == 0


def test_colours_truecolor_256_and_colon_form():
    t = Terminal(30, 2)
    t.feed("\x1b[31mr\x1b[38;5;208mo\x1b[38;2;1;2;3mt\x1b[48:2::9:8:7mb\x1b[0;1;7mR")
    row = t.screen.buffer[0]
    assert row[0].fg == "red" and row[1].fg == "ff8700" and row[2].fg == "010203"
    assert row[3].bg == "090807"
    assert row[4].bold and row[4].reverse


def test_scroll_up_and_down():
    t = Terminal(10, 4)
    t.feed("1\r\n2\r\n3\r\n4\x1b[2S")
    assert t.lines() == ["3", "4", "", ""]
    t.feed("\x1b[T")
    assert t.lines() == ["", "3", "4", ""]


def test_wrapped_lines_are_counted():
    t = Terminal(10, 4)
    t.feed("0123456789")  # exactly fills: no wrap yet
    assert t.screen.wrapped_lines == 0
    t.feed("abc")
    assert t.screen.wrapped_lines == 1
    assert t.lines()[1] == "abc"


def test_real_vim_recording_returns_to_the_shell():
    path = real_cast("asciinema__asciinema__tests__casts__demo.json")  # v1: bash launches vim briefly
    with CastReader(path) as reader:
        t = Terminal(reader.header.width, reader.header.height)
        entered = False
        for event in reader:
            if event.code == "o":
                t.feed(event.data)
                entered |= t.screen.in_alternate_screen
    assert entered and not t.screen.in_alternate_screen
    assert "~" not in t.text().split("\n")[-5:]  # no vim tildes left over
    assert t.unhandled_count == 0


_ESCAPE_PIECES = ["\x1b[", "\x1b]", "\x1bP", "\x1b", "\x9b", ";", "?", ">", "=", ":", "$", " ", "\x07", "\x1b\\",
                  "m", "H", "J", "K", "A", "h", "l", "r", "S", "T", "n", "q", "t", "@", "P", "X", "1049", "47",
                  "38", "5", "2", "255", "9999", "\r", "\n", "\t", "\b", "中", "\u200d", "é", "x"]


def test_emulator_survives_arbitrary_escape_soup():
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    # derandomize: CI must be repeatable; every input a past run found is pinned as an example.
    @settings(max_examples=300, deadline=None, derandomize=True)
    @example(pieces=["\x1b[5K", "\x1b[7J"], cols=3, rows=2)
    @example(pieces=["\x1b[", "²:"], cols=1, rows=1)
    @example(pieces=["\x9b", "\n", "٣²A"], cols=2, rows=2)
    @given(st.lists(st.one_of(st.sampled_from(_ESCAPE_PIECES), st.text(max_size=5)), max_size=60),
           st.integers(1, 30), st.integers(1, 10))
    def check(pieces, cols, rows):
        t = Terminal(cols, rows)
        for piece in pieces:
            t.feed(piece)
        lines = t.lines()
        assert len(lines) == rows
        c = t.cursor()
        assert 0 <= c.x < cols and 0 <= c.y < rows

    check()
