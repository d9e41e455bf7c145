"""Render terminal screens to RGB frames by blitting a cached glyph atlas.

Each distinct styled cell (character, colours, bold, underline, reverse, cursor) is rasterised once
into a ``(ch, cw, 3)`` tile; a frame is a gather of tiles by id, one NumPy indexing per changed row.
Only rows the emulator marks dirty are recomputed, so steady screens cost almost nothing.

Dimension letters: R rows, C columns of the grid; ch, cw the cell size in pixels; H = R*ch, W = C*cw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from wcwidth import wcwidth

from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.errors import NCError

RGB = tuple[int, int, int]

_ANSI_NAMES = ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"]


def _hex(value: str) -> RGB:
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


@dataclass(frozen=True)
class Theme:
    """Terminal colours: default foreground/background, cursor, and the 16 ANSI colours."""

    name: str
    foreground: RGB
    background: RGB
    cursor: RGB
    palette: tuple[RGB, ...]  # 16 entries: 8 normal then 8 bright

    @cached_property
    def named(self) -> dict[str, RGB]:
        """pyte colour names ("red", "brightred", ...) -> RGB."""
        names = {n: self.palette[i] for i, n in enumerate(_ANSI_NAMES)}
        names.update({"bright" + n: self.palette[8 + i] for i, n in enumerate(_ANSI_NAMES)})
        # pyte spells yellow "brown"; some SGR paths produce "yellow".
        names["yellow"], names["brightyellow"] = names["brown"], names["brightbrown"]
        # 256-colour indices 0-15 reach us as xterm hex values, indistinguishable from truecolour,
        # so they keep xterm's colours rather than the theme's: exact truecolour wins.
        return names


def _palette(*hexes: str) -> tuple[RGB, ...]:
    return tuple(_hex(h) for h in hexes)


THEMES: dict[str, Theme] = {
    "dark": Theme(
        "dark", _hex("e5e5e5"), _hex("0c0c0c"), _hex("e5e5e5"),
        _palette("000000", "cd3131", "0dbc79", "e5e510", "2472c8", "bc3fbc", "11a8cd", "e5e5e5",
                 "666666", "f14c4c", "23d18b", "f5f543", "3b8eea", "d670d6", "29b8db", "ffffff"),
    ),
    "light": Theme(
        "light", _hex("1e1e1e"), _hex("ffffff"), _hex("1e1e1e"),
        _palette("000000", "cd3131", "00bc00", "949800", "0451a5", "bc05bc", "0598bc", "555555",
                 "666666", "cd3131", "14ce14", "b5ba00", "0451a5", "bc05bc", "0598bc", "a5a5a5"),
    ),
    "solarized-dark": Theme(
        "solarized-dark", _hex("839496"), _hex("002b36"), _hex("93a1a1"),
        _palette("073642", "dc322f", "859900", "b58900", "268bd2", "d33682", "2aa198", "eee8d5",
                 "002b36", "cb4b16", "586e75", "657b83", "839496", "6c71c4", "93a1a1", "fdf6e3"),
    ),
}

_FONT_DIR = "fonts"
_FONT_FILES = {False: "DejaVuSansMono.ttf", True: "DejaVuSansMono-Bold.ttf"}


def _font_path(bold: bool) -> Path:
    return Path(str(resources.files("neuralcomputer.data").joinpath(_FONT_DIR, _FONT_FILES[bold])))


@dataclass
class GlyphAtlas:
    """Rasterised glyph coverage masks for one font size, built lazily and cached.

    ``mask(char, bold)`` is a ``(ch, cw * width)`` uint8 alpha mask (width 2 for wide characters).
    """

    font_size: int = 13
    _masks: dict[tuple[str, bool], np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 6 <= self.font_size <= 64:
            raise NCError(f"font size {self.font_size} px is out of range (expected 6..64)")
        self.fonts = {b: ImageFont.truetype(str(_font_path(b)), self.font_size) for b in (False, True)}
        regular = self.fonts[False]
        ascent, descent = regular.getmetrics()
        # Monospace advance, rounded: every glyph is drawn on this cell grid.
        self.cell_width = max(1, round(regular.getlength("M")))
        self.cell_height = ascent + descent
        self.ascent = ascent
        self._notdef: dict[bool, bytes] | None = None

    def mask(self, char: str, bold: bool, width: int = 1) -> np.ndarray:
        key = (char, bold, width)
        cached = self._masks.get(key)
        if cached is None:
            image = Image.new("L", (self.cell_width * width, self.cell_height), 0)
            draw = ImageDraw.Draw(image)
            if not char.strip():
                pass
            elif self._has_glyph(char, bold):
                draw.text((0, 0), char, fill=255, font=self.fonts[bold])
            else:
                # No glyph in the font (CJK, emoji): a box over the cells it occupies, as terminals
                # show "tofu", so the layout and the cell's occupancy stay visible.
                draw.rectangle((1, 2, self.cell_width * width - 2, self.cell_height - 3), outline=255)
            cached = self._masks[key] = np.asarray(image, dtype=np.uint8)
        return cached

    def _has_glyph(self, char: str, bold: bool) -> bool:
        font = self.fonts[bold]
        if self._notdef is None:
            # A private-use code point no font maps: what FreeType draws for a missing glyph.
            self._notdef = {b: bytes(self.fonts[b].getmask("\U0010fffd")) for b in (False, True)}
        return len(char) > 1 or bytes(font.getmask(char)) != self._notdef[bold]


class FrameRenderer:
    """Turns the state of a :class:`Terminal` into ``(H, W, 3)`` uint8 frames.

    Args:
        cols, rows: grid size the frames are rendered at (must match the terminal's).
        font_size: pixel size of the font (the paper renders at 13 px).
        theme: a :data:`THEMES` name.
        draw_cursor: paint the cursor as an inverted block when the terminal shows it.
    """

    def __init__(self, cols: int, rows: int, *, font_size: int = 13, theme: str = "dark",
                 draw_cursor: bool = True) -> None:
        if theme not in THEMES:
            raise NCError(f"unknown theme {theme!r} (expected one of {', '.join(THEMES)})")
        self.theme = THEMES[theme]
        self.atlas = GlyphAtlas(font_size)
        self.cols, self.rows = cols, rows
        self.draw_cursor = draw_cursor
        ch, cw = self.atlas.cell_height, self.atlas.cell_width
        self.frame_shape = (rows * ch, cols * cw, 3)
        self._tile_of: dict[tuple, int] = {}
        self._char_cache: dict[tuple, int] = {}  # (pyte Char, part) -> tile id
        self._tiles = np.zeros((256, ch, cw, 3), dtype=np.uint8)
        self._ids = np.zeros((rows, cols), dtype=np.int32)
        self._frame = np.zeros(self.frame_shape, dtype=np.uint8)
        self._tile(" ", self.theme.foreground, self.theme.background, False, False, 0)
        self._frame[:] = self.theme.background
        self._cursor_cell: tuple[int, int] | None = None
        self._all_dirty = True
        self.changed = True  # whether the last render() redrew anything
        self._row_text = [""] * rows

    @property
    def cell_size(self) -> tuple[int, int]:
        """(cell height, cell width) in pixels."""
        return self.atlas.cell_height, self.atlas.cell_width

    # -- tiles ------------------------------------------------------------------------------

    def _tile(self, char: str, fg: RGB, bg: RGB, bold: bool, underline: bool, part: int) -> int:
        """Id of the tile for one styled cell; ``part`` is 0, or 1/2 for halves of a wide glyph."""
        key = (char, fg, bg, bold, underline, part)
        tile_id = self._tile_of.get(key)
        if tile_id is not None:
            return tile_id
        ch, cw = self.cell_size
        if part == 0:
            alpha = self.atlas.mask(char, bold)
        else:
            alpha = self.atlas.mask(char, bold, width=2)[:, (part - 1) * cw : part * cw]
        alpha = alpha.astype(np.float32)[..., None] / 255.0
        tile = np.asarray(bg, np.float32) * (1 - alpha) + np.asarray(fg, np.float32) * alpha
        if underline:
            tile[min(self.atlas.ascent + 1, ch - 1), :, :] = fg
        tile_id = len(self._tile_of)
        if tile_id == len(self._tiles):
            self._tiles = np.concatenate([self._tiles, np.zeros_like(self._tiles)])
        self._tiles[tile_id] = np.clip(np.rint(tile), 0, 255).astype(np.uint8)
        self._tile_of[key] = tile_id
        return tile_id

    def _color(self, name: str, default: RGB) -> RGB:
        if name == "default":
            return default
        named = self.theme.named.get(name)
        if named is not None:
            return named
        try:
            return _hex(name)
        except ValueError:
            return default

    def _cell_tile(self, cell, part: int, cursor: bool) -> int:
        fg = self._color(cell.fg, self.theme.foreground)
        bg = self._color(cell.bg, self.theme.background)
        if cell.bold and cell.fg in _ANSI_NAMES:
            # Bold with a basic colour shows the bright variant, as xterm does by default.
            fg = self.theme.named["bright" + cell.fg]
        if cell.reverse:
            fg, bg = bg, fg
        if cursor:
            fg, bg = bg, self.theme.cursor
        return self._tile(cell.data or " ", fg, bg, cell.bold, cell.underscore, part)

    def _row_ids(self, cells: list, y: int, cursor_x: int | None) -> None:
        ids = self._ids[y]
        # Cells are pyte Char named tuples; keying the cache by the tuple itself skips colour
        # resolution for every styled cell seen before.
        cache = self._char_cache
        wide: object | None = None  # the left cell of a wide glyph whose right half comes next
        last = len(cells) - 1
        for x, cell in enumerate(cells):
            if wide is not None:
                cell, part, wide = wide, 2, None
            elif cell.data > "\u10ff" and x < last and wcwidth(cell.data[0]) == 2:
                part, wide = 1, cell
            else:
                part = 0
            if x == cursor_x:
                ids[x] = self._cell_tile(cell, part, True)
                continue
            key = (cell, part)
            tile_id = cache.get(key)
            if tile_id is None:
                tile_id = cache[key] = self._cell_tile(cell, part, False)
            ids[x] = tile_id

    # -- frames -----------------------------------------------------------------------------

    def render(self, terminal: Terminal) -> np.ndarray:
        """Render the terminal's current screen. Returns a view: copy it to keep it.

        Returns:
            ``(H, W, 3)`` uint8 array, ``H = rows * cell_height``, ``W = cols * cell_width``.
        """
        screen = terminal.screen
        if (screen.columns, screen.lines) != (self.cols, self.rows):
            raise NCError(f"terminal is {screen.columns}x{screen.lines}, renderer {self.cols}x{self.rows}")
        cursor = terminal.cursor()
        cursor_cell = (cursor.x, cursor.y) if (self.draw_cursor and cursor.visible) else None
        dirty = set(range(self.rows)) if self._all_dirty else set(screen.dirty)
        self._all_dirty = False
        screen.dirty.clear()
        if cursor_cell != self._cursor_cell:
            for cell in (cursor_cell, self._cursor_cell):
                if cell is not None:
                    dirty.add(cell[1])
            self._cursor_cell = cursor_cell
        ch, cw = self.cell_size
        buffer = screen.buffer
        self.changed = bool(dirty)
        for y in dirty:
            if not 0 <= y < self.rows:
                continue
            cx = cursor_cell[0] if cursor_cell is not None and cursor_cell[1] == y else None
            line = buffer[y]
            cells = [line[x] for x in range(self.cols)]
            self._row_ids(cells, y, cx)
            # The row's text, kept in step with its pixels (wide glyphs' stub cells hold "").
            self._row_text[y] = "".join([c.data for c in cells]).rstrip()
            # (C, ch, cw, 3) -> (ch, C*cw, 3)
            self._frame[y * ch : (y + 1) * ch] = (
                self._tiles[self._ids[y]].transpose(1, 0, 2, 3).reshape(ch, self.cols * cw, 3)
            )
        return self._frame

    def text(self) -> str:
        """Screen text of the last rendered frame (as :meth:`Terminal.text`, computed for dirty rows only)."""
        return "\n".join(self._row_text)

    def invalidate(self) -> None:
        """Force a full redraw on the next :meth:`render` (e.g. after the terminal was replaced)."""
        self._all_dirty = True
