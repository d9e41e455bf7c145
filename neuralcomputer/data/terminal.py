"""VT emulation: pyte, extended with what real recordings need and pyte lacks.

Why pyte plus an extension and not another emulator: pyte is the only maintained, pure-Python VT
emulator with a cell buffer we can render from (see ``benchmarks/emulators.py`` for the measurement
on the real casts). What it lacks, and what :class:`TerminalScreen` adds:

* the **alternate screen** (private modes 1049, 1047, 47), which vim, less, htop, tmux and most TUIs
  use; without it, a TUI's last screen stays on display after the program exits;
* **string sequences** (DCS ``ESC P``, SOS ``ESC X``, PM ``ESC ^``, APC ``ESC _``): pyte does not
  parse them and draws their payload as text (tmux and vim send DCS queries);
* pyte's ``draw`` silently **drops the rest of a chunk** after an unprintable or zero-width
  non-combining character (e.g. U+200D in emoji sequences); we skip just that character;
* bookkeeping the dataset filters need: counts of unhandled sequences and of auto-wrapped lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyte
from pyte import modes as pyte_modes
from wcwidth import wcwidth

# Private modes that switch to the alternate screen buffer (xterm):
# 1049 = save cursor + switch + clear, 1047 = switch (+ clear on leave), 47 = switch.
_ALT_MODES = {1049, 1047, 47}
# Start of a string sequence whose payload must not be drawn: ESC P/X/^/_ or their C1 forms.
_STRING_START = re.compile("\x1b[PX^_]|[\x90\x98\x9e\x9f]")
# String terminator: ST (ESC \ or C1 0x9c); BEL is accepted too, as xterm does for OSC-like strings.
_STRING_END = re.compile("\x1b\\\\|\x9c|\x07")


@dataclass(frozen=True)
class CursorState:
    """Where the cursor is (0-based cell coordinates) and whether it is shown."""

    x: int
    y: int
    visible: bool


class TerminalScreen(pyte.Screen):
    """A pyte screen with the alternate screen buffer and error/wrap bookkeeping."""

    def __init__(self, columns: int, lines: int) -> None:
        self.unhandled: Counter[str] = Counter()
        self.wrapped_lines = 0
        self.alt_switches = 0
        self._main_buffer: Any | None = None
        self._main_cursor: pyte.screens.Cursor | None = None
        super().__init__(columns, lines)

    # -- alternate screen -------------------------------------------------------------------

    @property
    def in_alternate_screen(self) -> bool:
        """True while a TUI has switched to the alternate buffer."""
        return self._main_buffer is not None

    def _enter_alternate(self, save_cursor: bool) -> None:
        if self._main_buffer is not None:
            return
        self.alt_switches += 1
        self._main_buffer = self.buffer
        self._main_cursor = self._copy_cursor() if save_cursor else None
        # A fresh, empty buffer with the same default-char factory pyte uses.
        self.buffer = type(self.buffer)(self._main_buffer.default_factory)
        self.dirty.update(range(self.lines))

    def _leave_alternate(self) -> None:
        if self._main_buffer is None:
            return
        self.buffer = self._main_buffer
        self._main_buffer = None
        if self._main_cursor is not None:
            self.cursor = self._main_cursor
            self._main_cursor = None
            self.ensure_hbounds()
            self.ensure_vbounds()
        self.dirty.update(range(self.lines))

    def _copy_cursor(self) -> pyte.screens.Cursor:
        c = self.cursor
        return pyte.screens.Cursor(c.x, c.y, c.attrs)

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            alt = [m for m in modes if m in _ALT_MODES]
            if alt:
                self._enter_alternate(save_cursor=1049 in alt)
                modes = tuple(m for m in modes if m not in _ALT_MODES)
                if not modes:
                    return
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            alt = [m for m in modes if m in _ALT_MODES]
            if alt:
                self._leave_alternate()
                modes = tuple(m for m in modes if m not in _ALT_MODES)
                if not modes:
                    return
        super().reset_mode(*modes, **kwargs)

    def reset(self) -> None:
        self._main_buffer = None
        self._main_cursor = None
        super().reset()

    # -- drawing ----------------------------------------------------------------------------

    def draw(self, data: str) -> None:
        if not data.isprintable():
            # pyte stops at the first character it cannot place; keep the rest of the chunk.
            data = "".join(ch for ch in data if wcwidth(ch) > 0 or unicodedata.combining(ch))
            if not data:
                return
        if pyte_modes.DECAWM in self.mode and self.cursor.x + len(data) > self.columns:
            # Exact for width-1 text, a close estimate otherwise; only used to flag clips
            # whose content does not fit the grid.
            self.wrapped_lines += (self.cursor.x + len(data) - 1) // self.columns
        super().draw(data)

    def debug(self, *args: Any, **kwargs: Any) -> None:
        """Count sequences pyte does not understand (the dataset's "emulator error" signal)."""
        self.unhandled[repr(args[:1])[:40]] += 1

    def write_process_input(self, data: str) -> None:
        """Replies to terminal queries go nowhere: the recording already holds the answers."""


class Terminal:
    """A VT emulator for one recording: feed output text, read back cells, text and cursor.

    Args:
        cols, rows: the grid size (columns x rows).
    """

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = TerminalScreen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        self._in_string = False
        self._pending = ""

    @property
    def cols(self) -> int:
        return self.screen.columns

    @property
    def rows(self) -> int:
        return self.screen.lines

    def feed(self, data: str) -> None:
        """Feed program output (already decoded text), as found in asciicast ``o`` events."""
        data = self._strip_string_sequences(self._pending + data)
        self._pending = ""
        if data.endswith("\x1b"):
            # An escape split across events: wait for the next byte to know what it starts.
            data, self._pending = data[:-1], "\x1b"
        if data:
            self.stream.feed(data)

    def _strip_string_sequences(self, data: str) -> str:
        """Remove DCS/SOS/PM/APC strings (even split across events) so their payload isn't drawn."""
        out: list[str] = []
        pos = 0
        while pos < len(data):
            if self._in_string:
                end = _STRING_END.search(data, pos)
                if end is None:
                    if data.endswith("\x1b"):
                        self._pending = "\x1b"
                    return "".join(out)
                self._in_string = False
                pos = end.end()
            else:
                start = _STRING_START.search(data, pos)
                if start is None:
                    out.append(data[pos:])
                    break
                out.append(data[pos : start.start()])
                self._in_string = True
                pos = start.end()
        return "".join(out)

    def resize(self, cols: int, rows: int) -> None:
        """Resize the grid (an asciicast ``r`` event)."""
        self.screen.resize(lines=rows, columns=cols)

    def lines(self) -> list[str]:
        """The screen as text, one string per row, trailing spaces removed."""
        return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        """The exact screen text (rows joined by newlines, trailing spaces per row removed)."""
        return "\n".join(self.lines())

    def cursor(self) -> CursorState:
        c = self.screen.cursor
        return CursorState(min(c.x, self.cols - 1), min(c.y, self.rows - 1), not c.hidden)

    @property
    def unhandled_count(self) -> int:
        """How many escape sequences the emulator could not interpret so far."""
        return sum(self.screen.unhandled.values())


def make_vanilla_terminal(cols: int, rows: int) -> tuple[pyte.Screen, Callable[[str], None]]:
    """Plain pyte (no extensions), for the emulator comparison benchmark."""
    screen = pyte.Screen(cols, rows)
    stream = pyte.Stream(screen)
    return screen, stream.feed
