"""VT emulation: pyte, extended with what real recordings need and pyte lacks.

Why pyte plus an extension and not another emulator: pyte is the only maintained, pure-Python VT
emulator with a cell buffer we can render from (see ``ncomp bench emulators`` for the measurement
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

import inspect
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
# Sequences that change nothing on screen and that pyte misparses or draws as text: xterm's
# ``CSI > ...`` / ``CSI = ...`` / ``CSI < ...`` (key modifier options, kitty keyboard protocol;
# pyte would read ``CSI > 4;2 m`` as SGR underline+faint), cursor style ``CSI Ps SP q``, window
# operations ``CSI ... t``, keypad modes ``ESC =`` / ``ESC >``, and queries/soft resets with an
# intermediate byte (``CSI ? 2026 $ p``, ``CSI ! p``).
_BENIGN = re.compile(
    r"\x1b\[[<=>][0-9;:]*[ -/]*[@-~]|\x1b\[[0-9;]* q|\x1b\[[0-9;]*t|\x1b[=>]"
    r"|\x1b\[\??[0-9;]*[!$%\"][@-~]"  # DECSTR soft reset, DECRQM mode queries, other intermediates
    r"|\x1b\[\?[0-9;]*[mn]"  # private SGR/DSR: xterm queries (XTQMODKEYS, DECDSR), no visible effect
)
# SGR with colon sub-parameters (``CSI 38:2::255:0:0 m``, ``CSI 4:3 m``): pyte stops at ``:``.
_SGR_COLON = re.compile(r"\x1b\[([0-9;]*:[0-9;:]*)m")
# A CSI whose parameters run into a non-ASCII character: pyte takes any ``str.isdigit`` character
# (``²``, ``٣``) as a parameter digit and then fails in ``int()``. Terminals accept ASCII digits
# only, so the sequence ends there, unknown: we drop it (keeping the controls pyte would have run).
_CSI_NON_ASCII = re.compile("(?:\x1b\\[|\x9b)[\x00-\x17\x19\x1c-\x3f]*[^\x00-\x7f]")
# An escape sequence cut off at the end of an event: held back until the next event completes it.
_INCOMPLETE_TAIL = re.compile("(?:\x1b(?:\\[[\x00-\x17\x19\x1c-\x3f]*)?|\x9b[\x00-\x17\x19\x1c-\x3f]*)$")
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

    def erase_in_line(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        # pyte 0.8.2 raises UnboundLocalError on EL with a parameter other than 0, 1, 2 (e.g. ESC[5K);
        # xterm ignores such a sequence, and so do we (found by the escape-soup property test).
        if how in (0, 1, 2):
            super().erase_in_line(how, *args, **kwargs)

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        # the same pyte bug for ED with a parameter other than 0-3
        if how in (0, 1, 2, 3):
            super().erase_in_display(how, *args, **kwargs)

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

    def scroll_up(self, count: int | None = None) -> None:
        """SU (``CSI n S``): scroll the region up n lines (pyte lacks it; tmux and zellij use it)."""
        self._scroll(count or 1, up=True)

    def scroll_down(self, count: int | None = None) -> None:
        """SD (``CSI n T``): scroll the region down n lines."""
        self._scroll(count or 1, up=False)

    def _scroll(self, count: int, up: bool) -> None:
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        saved = (self.cursor.x, self.cursor.y)
        self.cursor.y = bottom if up else top
        for _ in range(min(count, bottom - top + 1)):
            self.index() if up else self.reverse_index()
        self.cursor.x, self.cursor.y = saved

    def debug(self, *args: Any, **kwargs: Any) -> None:
        """Count sequences pyte does not understand (the dataset's "emulator error" signal)."""
        self.unhandled[repr(args[:1])[:40]] += 1

    def write_process_input(self, data: str) -> None:
        """Replies to terminal queries go nowhere: the recording already holds the answers."""


class _Stream(pyte.Stream):
    """pyte's parser plus the CSI sequences it does not map (scroll up/down)."""

    csi = {**pyte.Stream.csi, "S": "scroll_up", "T": "scroll_down"}


_CSI_HANDLERS = frozenset(_Stream.csi.values())


class _GuardedListener:
    """The screen as pyte's parser sees it, with every CSI handler made total.

    pyte calls handlers with whatever parameters a sequence carries, and with ``private=True`` after
    ``CSI ?``; many handlers accept neither (``CSI ? 5 n`` or ``CSI 1;2;3 A`` raise ``TypeError``).
    Real terminals ignore surplus parameters and unknown private variants: so do we, and count them.
    """

    def __init__(self, screen: TerminalScreen) -> None:
        self._screen = screen

    def __getattr__(self, name: str) -> Any:
        handler = getattr(self._screen, name)
        if name not in _CSI_HANDLERS:
            return handler
        params = inspect.signature(handler).parameters.values()
        takes_private = any(p.name == "private" or p.kind is p.VAR_KEYWORD for p in params)
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unlimited = any(p.kind is p.VAR_POSITIONAL for p in params)
        limit = None if unlimited else len(positional)
        screen = self._screen

        def guarded(*args: int, private: bool = False) -> None:
            if private and not takes_private:
                screen.unhandled[f"private {name}"] += 1
                return
            if limit is not None and len(args) > limit:
                args = args[:limit]
            if private:
                handler(*args, private=True)
            else:
                handler(*args)

        return guarded


class Terminal:
    """A VT emulator for one recording: feed output text, read back cells, text and cursor.

    Args:
        cols, rows: the grid size (columns x rows).
    """

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = TerminalScreen(cols, rows)
        self.stream = _Stream(_GuardedListener(self.screen))
        self._in_string = False
        self._pending = ""
        self.ignored = 0  # sequences recognised as having no visible effect

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
        tail = _INCOMPLETE_TAIL.search(data)
        if tail is not None:
            data, self._pending = data[: tail.start()], data[tail.start():]
        if "\x1b" in data or "\x9b" in data:
            data = _CSI_NON_ASCII.sub(self._drop_malformed, data)
            data = _BENIGN.sub(self._count_ignored, data)
            if ":" in data:
                data = _SGR_COLON.sub(_sgr_without_colons, data)
        if data:
            self.stream.feed(data)

    def _drop_malformed(self, match: re.Match[str]) -> str:
        self.screen.unhandled["malformed CSI"] += 1
        return "".join(c for c in match.group() if c < " " and c != "\x1b")

    def _count_ignored(self, match: re.Match[str]) -> str:
        self.ignored += 1
        return ""

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
        """The screen as text, one string per row, trailing spaces removed.

        Not pyte's ``display``: it fails on a wide glyph's stub cell left alone after the glyph was
        overwritten; a stub holds "" so joining the cells is exact and total.
        """
        buffer, cols = self.screen.buffer, self.screen.columns
        return ["".join([buffer[y][x].data for x in range(cols)]).rstrip() for y in range(self.screen.lines)]

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


def _sgr_without_colons(match: re.Match[str]) -> str:
    """Rewrite colon sub-parameters to the semicolon form pyte understands (or drop them)."""
    out: list[str] = []
    for param in match.group(1).split(";"):
        parts = param.split(":")
        if len(parts) == 1:
            out.append(param)
        elif parts[0] in ("38", "48") and len(parts) >= 5 and parts[1] == "2":
            out += [parts[0], "2", *(p or "0" for p in parts[-3:])]  # 38:2:[colourspace]:r:g:b
        elif parts[0] in ("38", "48") and len(parts) >= 3 and parts[1] == "5":
            out += [parts[0], "5", parts[2] or "0"]
        elif parts[0] == "4":
            out.append("4" if parts[1] not in ("", "0") else "24")  # curly/dotted underline -> underline
        # anything else (e.g. 58:... underline colour) has no equivalent here: dropped
    return f"\x1b[{';'.join(out)}m"


def make_vanilla_terminal(cols: int, rows: int) -> tuple[pyte.Screen, Callable[[str], None]]:
    """Plain pyte (no extensions), for the emulator comparison benchmark."""
    screen = pyte.Screen(cols, rows)
    stream = pyte.Stream(screen)
    return screen, stream.feed
