"""An exact tokenizer for terminal frames: one token per character cell, from a codebook of pixel tiles.

A terminal frame is a grid of character cells, each drawn from a finite set of tiles (one glyph in one
style: colours, bold, underline, the cursor's inverted block). :class:`TileCodec` keeps every distinct
tile it has seen (``fit``) plus the printable characters rendered in the default style, so that a frame
encodes to ``(rows, cols)`` tile ids and decodes back **bit for bit** whenever its tiles are known. A tile
never seen falls back to the nearest known one (L2 over pixels), so a foreign frame still encodes.

Each tile also knows the character it shows (from the screen text stored with the training frames, or
from the rendering), which is what lets a model copy caption characters into cells: :meth:`char_tile`
gives the default-style tile of a character.

Shapes: frames ``(H, W, 3)`` uint8 with ``H = rows * cell_h``, ``W = cols * cell_w``; ids ``(rows, cols)``
int64. Tile 0 is the blank cell of the default style.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from neuralcomputer.errors import NCError

# What the codec renders up front in the default style: ASCII and the Latin-1 supplement, so that any
# such character a caption quotes has a tile even if no training frame showed it.
_RENDERED_CHARS = "".join(chr(c) for c in range(32, 127)) + "".join(chr(c) for c in range(0xA1, 0x100))


class TileCodec:
    """Frames <-> grids of tile ids (exact on known tiles).

    Args:
        tiles: ``(N, cell_h, cell_w, 3)`` uint8, tile 0 the default blank cell.
        chars: the character each tile shows (``""`` when unknown, e.g. a wide glyph's right half).
    """

    def __init__(self, tiles: np.ndarray, chars: list[str]) -> None:
        if tiles.ndim != 4 or tiles.shape[-1] != 3 or len(chars) != len(tiles):
            raise NCError(f"tile codec: tiles {tiles.shape} and {len(chars)} chars do not match")
        self.tiles = np.ascontiguousarray(tiles, dtype=np.uint8)
        self.chars = list(chars)
        self.cell_h, self.cell_w = int(tiles.shape[1]), int(tiles.shape[2])
        self._flat = self.tiles.reshape(len(self.tiles), -1).astype(np.float32)
        # Lookup by a 64-bit hash of the tile's pixels (a random linear form mod 2**64): sorted hashes
        # and searchsorted find a frame's 1,920 cells in microseconds; a duplicate tile keeps the first id.
        hashes = _hash(self.tiles.reshape(len(self.tiles), -1))
        first_of = {}
        for i, h in enumerate(hashes.tolist()):
            first_of.setdefault(h, i)
        keys = np.array(sorted(first_of), dtype=np.uint64)
        self._keys = keys
        self._ids = np.array([first_of[k] for k in keys.tolist()], dtype=np.int64)
        # the default-style tile of each character: the first tile added for it (the rendered ones come first)
        self._char_tile: dict[str, int] = {}
        for i, c in enumerate(self.chars):
            if c and c not in self._char_tile:
                self._char_tile[c] = i

    def __len__(self) -> int:
        return len(self.tiles)

    # -- building ----------------------------------------------------------------------------------

    @classmethod
    def rendered(cls) -> TileCodec:
        """The codec of the default style alone: the blank cell and every printable ASCII/Latin-1 char."""
        from neuralcomputer.data.terminal.emulator import Terminal
        from neuralcomputer.data.terminal.render import FrameRenderer

        cols = 64
        rows = -(-len(_RENDERED_CHARS) // cols)
        term = Terminal(cols, rows)
        for r in range(rows):
            term.feed(_RENDERED_CHARS[r * cols:(r + 1) * cols])
            if r < rows - 1:
                term.feed("\r\n")
        renderer = FrameRenderer(cols, rows, draw_cursor=False)
        frame = renderer.render(term)
        cells = _cells(frame, *renderer.cell_size)
        tiles, chars, seen = [], [], set()
        for i, ch in enumerate(_RENDERED_CHARS):  # the space comes first: tile 0 is the blank cell
            tile = cells[i // cols, i % cols]
            if tile.tobytes() in seen:  # e.g. the soft hyphen draws as a blank
                continue
            seen.add(tile.tobytes())
            tiles.append(tile)
            chars.append(ch)
        return cls(np.stack(tiles), chars)

    def extend(self, frames: Iterable[np.ndarray], texts: Iterable[str] | None = None) -> int:
        """Add every new tile of ``frames`` (with the character the matching screen text shows there).

        Returns how many tiles were added."""
        votes: dict[bytes, Counter] = defaultdict(Counter)
        order: list[bytes] = []
        texts_it = iter(texts) if texts is not None else None
        for frame in frames:
            text = next(texts_it) if texts_it is not None else None
            cells = _cells(frame, self.cell_h, self.cell_w)
            rows, cols = cells.shape[:2]
            lines = text.split("\n") if text is not None else None
            flat = cells.reshape(rows * cols, -1)
            unknown = self._lookup(_hash(flat)) < 0
            for k in np.flatnonzero(unknown).tolist():
                key = flat[k].tobytes()
                if key not in votes:
                    order.append(key)
                r, c = divmod(k, cols)
                ch = lines[r][c] if lines is not None and r < len(lines) and c < len(lines[r]) else ""
                votes[key][ch] += 1
        if not order:
            return 0
        new = np.stack([np.frombuffer(k, dtype=np.uint8).reshape(self.cell_h, self.cell_w, 3) for k in order])
        chars = self.chars + [votes[k].most_common(1)[0][0] for k in order]
        self.__init__(np.concatenate([self.tiles, new]), chars)
        return len(order)

    # -- encode / decode ---------------------------------------------------------------------------

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 -> ``(rows, cols)`` tile ids; unknown tiles map to the nearest known one."""
        if frame.ndim != 3 or frame.shape[0] % self.cell_h or frame.shape[1] % self.cell_w:
            raise NCError(f"frame {frame.shape} is not a grid of {self.cell_h}x{self.cell_w} cells")
        cells = _cells(frame, self.cell_h, self.cell_w)
        rows, cols = cells.shape[:2]
        flat = cells.reshape(rows * cols, -1)
        ids = self._lookup(_hash(flat))
        unknown = np.flatnonzero(ids < 0)
        if len(unknown):
            x = flat[unknown].astype(np.float32)
            d = (x * x).sum(1, keepdims=True) - 2 * x @ self._flat.T + (self._flat * self._flat).sum(1)[None]
            ids[unknown] = d.argmin(1)
        return ids.reshape(rows, cols)

    def _lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Tile ids of the given hashes, -1 where unknown."""
        pos = np.minimum(np.searchsorted(self._keys, hashes), len(self._keys) - 1)
        return np.where(self._keys[pos] == hashes, self._ids[pos], -1)

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """``(..., rows, cols)`` tile ids -> ``(..., rows * cell_h, cols * cell_w, 3)`` uint8."""
        tiles = self.tiles[ids]  # (..., rows, cols, ch, cw, 3)
        lead = ids.shape[:-2]
        rows, cols = ids.shape[-2:]
        nd = len(lead)
        perm = tuple(range(nd)) + (nd, nd + 2, nd + 1, nd + 3, nd + 4)
        return np.ascontiguousarray(tiles.transpose(perm)).reshape(*lead, rows * self.cell_h, cols * self.cell_w, 3)

    def char_tile(self, char: str) -> int:
        """The default-style tile of ``char`` (the blank tile for a character the codec cannot draw)."""
        return self._char_tile.get(char, 0)

    def text(self, ids: np.ndarray) -> str:
        """The screen text of a ``(rows, cols)`` grid (rows joined by newlines, trailing spaces kept)."""
        return "\n".join("".join(self.chars[i] or " " for i in row) for row in ids.tolist())

    # -- files -------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"tiles": self.tiles}, str(directory / "tiles.safetensors"))
        (directory / "tiles.json").write_text(json.dumps({"chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, directory: str | Path) -> TileCodec:
        directory = Path(directory)
        if not (directory / "tiles.safetensors").is_file():
            raise NCError(f"{directory}: no tiles.safetensors (not a tile codec)")
        tiles = load_file(str(directory / "tiles.safetensors"))["tiles"]
        chars = json.loads((directory / "tiles.json").read_text())["chars"]
        return cls(tiles, chars)


_HASH_WEIGHTS = np.random.default_rng(20261204).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def _hash(flat: np.ndarray) -> np.ndarray:
    """``(K, P)`` uint8 pixels -> ``(K,)`` uint64 hashes (wrapping arithmetic; odd weights)."""
    with np.errstate(over="ignore"):
        return flat.astype(np.uint64) @ _HASH_WEIGHTS[: flat.shape[1]]


def _cells(frame: np.ndarray, cell_h: int, cell_w: int) -> np.ndarray:
    """``(H, W, 3)`` -> ``(rows, cols, cell_h, cell_w, 3)`` (a view-free copy, contiguous per cell)."""
    rows, cols = frame.shape[0] // cell_h, frame.shape[1] // cell_w
    return np.ascontiguousarray(frame.reshape(rows, cell_h, cols, cell_w, 3).transpose(0, 2, 1, 3, 4))
