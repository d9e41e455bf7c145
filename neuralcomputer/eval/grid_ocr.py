"""Grid OCR: read a terminal frame cell by cell by matching the font's own glyph masks.

We know the font (vendored DejaVu Sans Mono), its pixel size and the cell grid, so reading a frame is a
nearest-template problem per cell, not general OCR. Each cell is modelled as two colours mixed by a
glyph's coverage, ``pixel = bg + (fg - bg) * alpha``; fitting that model by least squares to every
candidate glyph at once is one matrix product, and it is colour-agnostic by construction: coloured
text, reverse video, the inverted block cursor and every theme read the same. On clean renders the
right glyph fits exactly, so the reader's ceiling on ground truth is ~1.0 (see ``ceilings.py``).

Why hand-written: no OCR library exploits a known font and grid. Measured on one core (80x24 at
13 px, ``ncomp bench ocr``): Tesseract reads ~3.5 frames/s and misses characters (char_acc ~0.85 on
ground-truth renders), this reads ~800 frames/s with a cold cache and exactly.

Dimension letters: R rows, C columns of the grid; ch, cw the cell size; P = ch*cw pixels per cell;
N cells, M unique non-blank cells, G candidate glyph templates.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np
from wcwidth import wcwidth

from neuralcomputer.data.terminal.render import THEMES, GlyphAtlas
from neuralcomputer.errors import NCError

REPLACEMENT = "\ufffd"  # what a glyph the font lacks ("tofu" box) reads as

_ASCII = [chr(c) for c in range(0x21, 0x7F)]
# Beyond ASCII, every narrow glyph the font has in the blocks terminals show: Latin-1 and Latin
# Extended (accented letters), Greek, Cyrillic, punctuation, super/subscripts, currency, letterlike,
# arrows, maths, technical symbols, box drawing, block elements, geometric shapes, symbols and
# dingbats (check marks, prompt glyphs). Measured on the real casts, these cover every character the
# font can draw there; what the font lacks (emoji, braille, Nerd Font icons) renders as a box.
_EXTRA_RANGES = [(0xA1, 0x250), (0x370, 0x530), (0x1E00, 0x1F00), (0x2010, 0x2400), (0x2500, 0x2800),
                 (0x2900, 0x2C00)]
# Characters the font draws identically to others (em/en/figure dash at 8 px, Latin/Greek/Cyrillic
# look-alikes): the first in this order wins, so common ones go first.
_PREFERRED = "—…•·‹›«»±×÷°✔✓✗✘✖➜❯❮→←↑↓⇡⇣⚠⬢◯●○■□▲▼►◄▶◀★☆"
_STAGE1_FIT = 0.995  # a first-stage (ASCII) fit this good is taken without trying the other glyphs
# A non-ASCII glyph must explain this much more of the cell's variance than the best ASCII glyph to
# win: on clean renders the right glyph fits exactly, and on noisy generated frames it keeps rare
# symbols from taking cells that are most likely plain letters.
_EXTRA_MARGIN = 0.02


@cache
def _openblas() -> ctypes.CDLL | None:
    """NumPy's bundled OpenBLAS (the wheel's scipy-openblas), or None when NumPy uses another BLAS."""
    pattern = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs", "libscipy_openblas*.so*")
    for path in glob.glob(pattern):
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: this returns the same library
            lib.scipy_openblas_get_num_threads64_.restype = ctypes.c_int
            return lib
        except (OSError, AttributeError):
            continue
    return None


@contextmanager
def _single_thread_blas() -> Iterator[None]:
    """Run NumPy's BLAS on one thread for the duration (process-wide, restored after).

    Why: our products are small (hundreds of rows), and OpenBLAS splitting them over threads was
    measured 50x slower on a busy 2-core machine (18 ms vs 0.35 ms per frame), and worse when the
    process is pinned to one core. threadpoolctl would do this too but is not a dependency.
    """
    lib = _openblas()
    if lib is None:
        yield
        return
    previous = lib.scipy_openblas_get_num_threads64_()
    lib.scipy_openblas_set_num_threads64_(1)
    try:
        yield
    finally:
        lib.scipy_openblas_set_num_threads64_(previous)


@dataclass(frozen=True)
class _Template:
    char: str  # what the cell reads as ("" for the right half of a wide glyph)
    bold: bool
    underline: bool


class GridOCR:
    """Reads terminal frames rendered with the project's font on a known cell grid.

    Args:
        font_size: the font's pixel size (the frames' cell size follows from it).
        theme: a :data:`~neuralcomputer.data.terminal.render.THEMES` name, checked but not needed: the fit
            is colour-agnostic, so one reader reads every theme. (No two glyphs of the font are
            exact complements at any size from 8 to 24 px, so reverse video is never ambiguous.)
        cols, rows: the grid; inferred from the frame size when not given.
        blank_range: a cell whose pixel values span fewer levels than this in every channel is blank.
        min_fit: a cell whose best glyph explains less than this fraction of its variance (noise,
            a blurry generated frame) is read as blank rather than as a guess.
        extended: also match the font's other narrow glyphs (accented Latin, Greek, Cyrillic, box
            drawing, blocks, arrows, maths, symbols; ~10x the templates of ASCII alone, paid only
            by cells that no ASCII glyph fits).
        cache_size: distinct cell pictures remembered across frames (0 disables the cache).

    ``read(frame)`` returns rows joined by ``"\\n"`` with trailing spaces removed, the convention of
    :meth:`Terminal.text <neuralcomputer.data.terminal.emulator.Terminal.text>`; frames are ``(H, W, 3)`` uint8
    with ``H = rows * cell_height`` and ``W = cols * cell_width``.
    """

    def __init__(self, font_size: int = 13, theme: str | None = None, cols: int | None = None,
                 rows: int | None = None, *, blank_range: int = 8, min_fit: float = 0.5,
                 extended: bool = True, cache_size: int = 200_000) -> None:
        if theme is not None and theme not in THEMES:
            raise NCError(f"unknown theme {theme!r} (expected one of {', '.join(THEMES)})")
        self.atlas = GlyphAtlas(font_size)
        self.cell_height, self.cell_width = self.atlas.cell_height, self.atlas.cell_width
        self.cols, self.rows = cols, rows
        self.theme = theme
        self.blank_range = blank_range
        self.min_fit = min_fit
        self.cache_size = cache_size
        self._cache: dict[bytes, str] = {}
        self._build_templates(extended)

    # -- templates ------------------------------------------------------------------------------

    def _candidates(self, extended: bool) -> tuple[list[_Template], list[np.ndarray], int]:
        """Glyph templates in priority order (ties keep the first); returns (templates, masks, n_ascii)."""
        ch, cw = self.cell_height, self.cell_width
        underline_row = min(self.atlas.ascent + 1, ch - 1)  # where FrameRenderer draws underlines
        templates: list[_Template] = []
        masks: list[np.ndarray] = []

        def add(char: str, bold: bool, underline: bool, mask: np.ndarray) -> None:
            templates.append(_Template(char, bold, underline))
            masks.append(mask.astype(np.float32) / 255.0)

        for bold in (False, True):
            for c in _ASCII:
                add(c, bold, False, self.atlas.mask(c, bold))
        for bold in (False, True):
            for c in [" ", *_ASCII]:
                m = self.atlas.mask(c, bold).copy()
                m[underline_row, :] = 255
                add(c, bold, True, m)
        n_ascii = len(templates)
        if extended:
            extra = list(_PREFERRED) + [chr(c) for lo, hi in _EXTRA_RANGES for c in range(lo, hi)]
            extra = [c for c in dict.fromkeys(extra) if c.isprintable() and not c.isspace() and wcwidth(c) == 1]
            for bold in (False, True):
                for c in extra:
                    if self.atlas._has_glyph(c, bold):
                        add(c, bold, False, self.atlas.mask(c, bold))
            # A glyph the font lacks is drawn as a box: one cell wide, or split over two cells.
            tofu = self.atlas.mask("\U0010fffd", False)
            wide = self.atlas.mask("\U0010fffd", False, width=2)
            add(REPLACEMENT, False, False, tofu)
            add(REPLACEMENT, False, False, wide[:, :cw])
            add("", False, False, wide[:, cw:])
        return templates, masks, n_ascii

    def _build_templates(self, extended: bool) -> None:
        templates, masks, n_ascii = self._candidates(extended)
        alpha = np.stack([m.reshape(-1) for m in masks])  # (G, P)
        centred = alpha - alpha.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(centred, axis=1)
        keep = norms > 1e-6  # a uniform mask cannot be told from a blank cell
        unit = np.zeros_like(centred)
        unit[keep] = centred[keep] / norms[keep, None]
        # Deduplicate: identical pictures (the same mask up to contrast, or one the other's
        # complement, which a colour-agnostic fit cannot tell apart) keep the first in priority order.
        quantised = np.rint(unit * 4096).astype(np.int16)
        seen: set[bytes] = set()
        chosen: list[int] = []
        for g in np.flatnonzero(keep).tolist():
            key, negated = quantised[g].tobytes(), (-quantised[g]).tobytes()
            if key not in seen and negated not in seen:
                seen.add(key)
                chosen.append(g)
        self._templates = templates
        self._chosen = np.asarray(chosen)
        self._unit = np.ascontiguousarray(unit[self._chosen].T)  # (P, G') float32
        self._n_stage1 = int(np.sum(self._chosen < n_ascii))

    @property
    def charset(self) -> str:
        """Every character this reader can output (besides space)."""
        return "".join(sorted({self._templates[g].char for g in self._chosen} - {""}))

    def clear_cache(self) -> None:
        """Forget the cell pictures read so far."""
        self._cache.clear()

    # -- reading --------------------------------------------------------------------------------

    def grid_shape(self, frame: np.ndarray) -> tuple[int, int]:
        """(rows, cols) of a frame, checked against the cell size and any grid given."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise NCError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        ch, cw = self.cell_height, self.cell_width
        rows = self.rows if self.rows is not None else h // ch
        cols = self.cols if self.cols is not None else w // cw
        if rows * ch != h or cols * cw != w:
            raise NCError(f"frame {w}x{h} px is not a {cols}x{rows} grid of {cw}x{ch} px cells "
                          f"(font size {self.atlas.font_size})")
        return rows, cols

    def read_lines(self, frame: np.ndarray) -> list[str]:
        """One string per grid row, trailing spaces removed."""
        chars = self.read_cells(frame)
        return ["".join(row).rstrip(" ") for row in chars]

    def read(self, frame: np.ndarray) -> str:
        """The frame's screen text: rows joined by newlines, trailing spaces removed."""
        return "\n".join(self.read_lines(frame))

    def read_cells(self, frame: np.ndarray) -> list[list[str]]:
        """The character of every cell, ``R`` lists of ``C`` strings (``" "`` for blank)."""
        rows, cols = self.grid_shape(frame)
        ch, cw = self.cell_height, self.cell_width
        p = ch * cw
        # (H, W, 3) -> (R, ch, C, cw, 3) -> (N, 3, P): channel-first, so per-cell reductions and the
        # matching run over contiguous memory.
        cells = frame.reshape(rows, ch, cols, cw, 3).transpose(0, 2, 4, 1, 3).reshape(rows * cols, 3, p)
        spread = (cells.max(axis=2).astype(np.int16) - cells.min(axis=2)).max(axis=1)  # (N,)
        ink = np.flatnonzero(spread >= self.blank_range)
        out = np.full(rows * cols, " ", dtype=object)
        if len(ink):
            # Terminal frames repeat cell pictures (same letter, same colours): read each once.
            flat = cells[ink].reshape(len(ink), 3 * p)
            keys, first, inverse = np.unique(flat.view(np.dtype((np.void, 3 * p))).ravel(),
                                             return_index=True, return_inverse=True)
            read = np.empty(len(keys), dtype=object)
            todo = []
            for u, key in enumerate(keys):
                hit = self._cache.get(key.tobytes()) if self.cache_size else None
                if hit is None:
                    todo.append(u)
                else:
                    read[u] = hit
            if todo:
                with _single_thread_blas():
                    fresh = self._match(cells[ink[first[todo]]])
                for u, char in zip(todo, fresh, strict=True):
                    read[u] = char
                if self.cache_size:
                    if len(self._cache) + len(todo) > self.cache_size:
                        self._cache.clear()
                    for u in todo:
                        self._cache[keys[u].tobytes()] = read[u]
            out[ink] = read[inverse.ravel()]
        return out.reshape(rows, cols).tolist()

    def _fit(self, x: np.ndarray, total: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Best of the first ``width`` templates for centred cells ``x`` (M, 3, P).

        Returns (template index (M,), fraction of the cell's variance it explains (M,)).
        """
        m = len(x)
        proj = (x.reshape(m * 3, -1) @ self._unit[:, :width]).reshape(m, 3, width)  # (M, 3, G)
        # Least-squares fit of bg + (fg - bg) * alpha per channel: the explained variance is the
        # squared projection on the centred, normalised mask, summed over channels.
        score = (proj * proj).sum(axis=1)  # (M, G)
        best = score.argmax(axis=1)
        return best, score[np.arange(m), best] / np.maximum(total, 1e-6)

    def _match(self, cells: np.ndarray) -> list[str]:
        """Best glyph of each ``(M, 3, P)`` uint8 cell, in two stages (ASCII first, then the rest)."""
        x = cells.astype(np.float32)  # (M, 3, P)
        x -= x.mean(axis=2, keepdims=True)
        total = (x * x).sum(axis=(1, 2))  # (M,) variance to explain
        best, fit = self._fit(x, total, self._n_stage1)
        rest = np.flatnonzero(fit < _STAGE1_FIT)
        if len(rest) and self._unit.shape[1] > self._n_stage1:
            best2, fit2 = self._fit(x[rest], total[rest], self._unit.shape[1])
            better = fit2 > fit[rest] + _EXTRA_MARGIN
            best[rest[better]], fit[rest[better]] = best2[better], fit2[better]
        chars = [self._templates[g].char for g in self._chosen[best].tolist()]
        return [c if f >= self.min_fit else " " for c, f in zip(chars, fit.tolist(), strict=True)]
