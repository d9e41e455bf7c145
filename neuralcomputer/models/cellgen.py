"""CellGen: a CPU terminal model that works in character cells, one token per cell.

The CPU preset of CLIGen (the GPU presets keep Wan2.1). A clip is described by the last screen and,
per cell, the frame at which the cell takes its last value; frame ``t`` shows the last value where
``t >= switch`` and the first frame's elsewhere (typing appears, output appears, a scroll moves rows).
The network predicts both from:

* the first frame's tile ids (:class:`~neuralcomputer.models.tile_codec.TileCodec`, exact);
* the first frame scrolled by what the caption says (``The screen scrolls up N lines.``);
* the caption's quoted lines laid out where the caption says they stand (``From line R the screen
  reads:``), each character embedded through the same tile table as the screen (its default-style
  tile), so a cell finds its character by position, not by counting bytes;
* the caption's bytes (cross-attention: commands and summaries of the regular/semantic tiers);
* when each row settles, where the caption says (``Timing: line 3 from 0.40 s to 1.13 s``): the row's
  first and last switch frame, embedded and added to its cells (a caption without timing gives "none");
* the target's own tiles where they are already decided (masked/absorbing discrete diffusion: training
  hides a random share of them; sampling reveals the most confident cells over a few steps).

Copy prior: the tile logits start as a copy of the scrolled first frame, or of the caption's character
where the caption places one (two learned scalars), so an untrained model already scores what copying
scores, and training learns only the change.

Attention is factorised in space (each cell attends to its row, then its column), which keeps a
24x80 screen (1,920 tokens) affordable on a CPU. Dimensions: B batch, R rows, C cols, L caption bytes,
D width, N tiles, S switch classes (frames of the clip).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralcomputer.data.terminal.captions import (
    RowTiming,
    ScreenChange,
    parse_detailed,
    parse_regular,
    settle_frames,
)
from neuralcomputer.errors import NCError

NO_CHAR = -1  # a cell the caption says nothing of
PAD = -2  # a cell of a quoted row past the line's end (blank, unless the cursor stands there)


def layout_inputs(first: np.ndarray, caption: str, char_tile, first_text: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(R, C)`` first-frame tile ids -> (the first frame scrolled as the caption says ``(R, C)``, the
    caption's characters as default-style tile ids where it places them ``(R, C)``: ``PAD`` past the end
    of a quoted line (the row is replaced; the captioner strips trailing spaces), ``NO_CHAR`` elsewhere).

    ``first_text``: the first frame's text (``TileCodec.text``); given, a regular caption's commands and
    last line are laid out where they most likely stand (:func:`~neuralcomputer.data.terminal.captions.
    parse_regular`, a hint the network learns how far to trust)."""
    hints = parse_regular(caption, first_text) if first_text is not None else None
    return layout_change(first, parse_detailed(caption), char_tile, hints)


def layout_change(first: np.ndarray, layout: ScreenChange, char_tile, hints: dict[int, str] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`layout_inputs` from an already parsed caption (``parse_detailed``, and ``parse_regular``'s
    ``{row: line}`` hints), for a caller that needs the parse for more than the layout (sampling's text
    constraint). A quoted row wins over a hinted one."""
    rows, cols = first.shape
    k = min(layout.scroll, rows)
    shifted = np.zeros_like(first)
    shifted[: rows - k] = first[k:]
    canvas = np.full_like(first, NO_CHAR)
    placed = {**(hints or {}), **{layout.row + i: line for i, line in enumerate(layout.lines)}}
    for r, line in placed.items():
        if r >= rows:
            continue
        canvas[r] = PAD
        for c, ch in enumerate(line[:cols]):
            canvas[r, c] = char_tile(ch)
    return shifted, canvas


def row_windows(timing: tuple[RowTiming, ...], rows: int, frames: int) -> np.ndarray:
    """A caption's row timing -> ``(R, 2)`` each row's first and last switch frame (clamped to the clip),
    ``frames`` (the "no timing" index) for rows it does not time."""
    out = np.full((rows, 2), frames, dtype=np.int64)
    for t in timing:
        out[t.first: t.last + 1] = (min(t.start, frames - 1), min(t.end, frames - 1))
    return out


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)  # every block starts as the identity
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (G, M, D)`` attends to ``context (G, K, D)`` (itself when None); ``mask (G, 1, 1, K)`` bool."""
        h = self.norm(x)
        ctx = h if context is None else context
        g, m, d = h.shape
        q = self.q(h).view(g, m, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).view(g, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return x + self.out(a.transpose(1, 2).reshape(g, m, d))


class _Block(nn.Module):
    """Row attention, column attention, cross-attention to the caption, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.row = _Attention(dim, heads)
        self.col = _Attention(dim, heads)
        self.cross = _Attention(dim, heads)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        b, r, c, d = x.shape
        x = self.row(x.reshape(b * r, c, d)).view(b, r, c, d)                                 # (B*R, C, D)
        x = self.col(x.transpose(1, 2).reshape(b * c, r, d)).view(b, c, r, d).transpose(1, 2)  # (B*C, R, D)
        x = self.cross(x.reshape(b, r * c, d), text, text_mask).view(b, r, c, d)             # (B, R*C, D)
        return x + self.mlp(x)


class CellGenNet(nn.Module):
    """The denoiser: cells in, per-cell tile logits ``(B, R, C, N)`` and switch logits ``(B, R, C, S)`` out.

    Args:
        num_tiles: N, the codec's tiles.
        switch_classes: S, frames of a clip (class s: the cell takes its last value at frame s).
        dim, layers, heads, mlp_ratio: the width, depth, attention heads and MLP expansion.
        max_rows, max_cols, max_text: the largest grid and caption (bytes) it reads.
        copy_prior: start the tile logits as a copy of the scrolled first frame / the caption's character.
        timing_input: read each row's switch window from the caption's timing (``window`` in
            :meth:`forward`); off in models trained before captions gave timing.
    """

    def __init__(self, num_tiles: int, switch_classes: int, dim: int = 128, layers: int = 4, heads: int = 4,
                 max_rows: int = 64, max_cols: int = 256, max_text: int = 4096, copy_prior: bool = True,
                 mlp_ratio: int = 4, timing_input: bool = False) -> None:
        super().__init__()
        self.num_tiles, self.switch_classes, self.max_text = num_tiles, switch_classes, max_text
        self.copy_prior = copy_prior
        self.tile = nn.Embedding(num_tiles + 3, dim)  # + NO_CHAR, + PAD, + MASK
        self.no_char, self.pad_id, self.mask_id = num_tiles, num_tiles + 1, num_tiles + 2
        self.mix = nn.Linear(4 * dim, dim)  # first | scrolled | caption char | target-so-far
        self.row_pos = nn.Embedding(max_rows, dim)
        self.col_pos = nn.Embedding(max_cols, dim)
        self.byte = nn.Embedding(256, dim)
        self.byte_pos = nn.Embedding(max_text, dim)
        self.text_block = _Attention(dim, heads)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.to_tile = nn.Linear(dim, num_tiles)
        self.to_switch = nn.Linear(dim, switch_classes)
        self.timing_input = timing_input
        if timing_input:  # a row's first and last switch frame; index S = the caption does not say
            self.window_start = nn.Embedding(switch_classes + 1, dim)
            self.window_end = nn.Embedding(switch_classes + 1, dim)
        # copy prior: logit bonus for the scrolled first frame's tile and for the caption's tile
        self.copy_scale = nn.Parameter(torch.tensor(8.0 if copy_prior else 0.0))
        self.caption_scale = nn.Parameter(torch.tensor(12.0 if copy_prior else 0.0))
        self.pad_scale = nn.Parameter(torch.tensor(6.0 if copy_prior else 0.0))  # blank past a quoted line
        nn.init.zeros_(self.to_tile.weight)
        nn.init.zeros_(self.to_tile.bias)

    def encode_text(self, text: torch.Tensor, text_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, L)`` bytes -> ``(B, L, D)`` features and the ``(B, 1, 1, L)`` attention mask."""
        b, length = text.shape
        mask = (torch.arange(length, device=text.device)[None] < text_len[:, None]).view(b, 1, 1, length)
        h = self.byte(text) + self.byte_pos(torch.arange(length, device=text.device))[None]
        return self.text_block(h, mask=mask), mask

    def forward(self, first: torch.Tensor, shifted: torch.Tensor, canvas: torch.Tensor, target: torch.Tensor,
                text: torch.Tensor, text_len: torch.Tensor, window: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """first, shifted, canvas, target: ``(B, R, C)`` ids (canvas: NO_CHAR, PAD; target: -1 = masked);
        text ``(B, L)`` bytes, text_len ``(B,)``; window ``(B, R, 2)`` each row's switch window
        (:func:`row_windows`; None: no timing). Returns tile logits ``(B, R, C, N)``, switch ``(B, R, C, S)``."""
        b, r, c = first.shape
        canvas_in = torch.where(canvas == PAD, torch.full_like(canvas, self.pad_id),
                                torch.where(canvas < 0, torch.full_like(canvas, self.no_char), canvas))
        target_in = torch.where(target < 0, torch.full_like(target, self.mask_id), target)
        x = torch.cat([self.tile(first), self.tile(shifted), self.tile(canvas_in), self.tile(target_in)], -1)
        x = self.mix(x)                                                                        # (B, R, C, D)
        x = x + self.row_pos(torch.arange(r, device=x.device))[None, :, None]
        x = x + self.col_pos(torch.arange(c, device=x.device))[None, None, :]
        if self.timing_input:
            if window is None:
                window = torch.full((b, r, 2), self.switch_classes, dtype=torch.int64, device=x.device)
            x = x + (self.window_start(window[..., 0]) + self.window_end(window[..., 1]))[:, :, None]
        t, t_mask = self.encode_text(text, text_len)                                          # (B, L, D)
        for block in self.blocks:
            x = block(x, t, t_mask)
        h = self.norm(x)
        logits = self.to_tile(h)                                                              # (B, R, C, N)
        # copy prior: the caption's character where it places one, a blank past a quoted line's end,
        # the scrolled first frame elsewhere (each a learned logit bonus on one tile)
        placed = canvas >= 0
        source = torch.where(placed, canvas, torch.where(canvas == PAD, torch.zeros_like(shifted), shifted))
        scale = torch.where(placed, self.caption_scale, torch.where(canvas == PAD, self.pad_scale, self.copy_scale))
        logits = logits.scatter_add(-1, source.unsqueeze(-1), scale.unsqueeze(-1).to(logits.dtype))
        return logits, self.to_switch(h)


def pad_bytes(texts: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
    """Byte strings -> ``(B, L)`` zero-padded int64 and ``(B,)`` lengths (L at least 1)."""
    length = max(1, max(len(t) for t in texts))
    out = torch.zeros(len(texts), length, dtype=torch.int64)
    for i, t in enumerate(texts):
        if t:
            out[i, : len(t)] = torch.frombuffer(bytearray(t), dtype=torch.uint8).long()
    return out, torch.tensor([len(t) for t in texts])


switch_times = settle_frames  # (T, R, C) tile ids -> (R, C) the frame each cell takes its last value


def compose_frames(first: np.ndarray, final: np.ndarray, switch: np.ndarray, num_frames: int) -> np.ndarray:
    """``(R, C)`` first and last tile ids and switch frames -> ``(T, R, C)`` the clip's tile ids."""
    t = np.arange(num_frames)[:, None, None]
    return np.where(t >= switch[None], final[None], first[None])


def masked_schedule(ratio: torch.Tensor) -> torch.Tensor:
    """The share of target cells hidden at diffusion time ``ratio`` in [0, 1] (cosine, as MaskGIT)."""
    return torch.cos(ratio * math.pi / 2)


def check_grid(rows: int, cols: int, net: CellGenNet) -> None:
    if rows > net.row_pos.num_embeddings or cols > net.col_pos.num_embeddings:
        raise NCError(f"a {cols}x{rows} terminal is larger than this model reads "
                      f"({net.col_pos.num_embeddings}x{net.row_pos.num_embeddings})")
