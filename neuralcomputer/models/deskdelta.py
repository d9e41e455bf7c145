"""DeskDelta: the CPU design of GUIWorld, a copy prior over cursor-free framebuffers.

A desktop frame is mostly the one before it. DeskDelta predicts, for every pixel, *whether* it
changes (a gate) and *to what* (a colour), from the previous framebuffers and the recent input:

    fb_t = fb_{t-1}                 where gate <= 0.5   (sampling: a hard, exact copy)
    fb_t = colour                   where gate >  0.5

The gate's bias starts far negative, so an untrained model *is* copy-previous-frame, and training
only has to learn where the screen changes (menus, windows, typed text, hover highlights) and what
appears there. The cursor is not part of the framebuffer: the runtime draws it at the pointer (as an
X server composites its hardware cursor), which is the paper's "cursor reference" made exact rather
than learned. The learned part is everything else the input does to the screen.

Network: the two previous framebuffers (and, with ``memory`` > 0, the one ``memory`` steps back: what a
closing menu covered) are folded 4x4 into channels (a 48x64 grid at 256x192), the
input of the last ``history`` steps is drawn on that grid (pointer, button down and up, bilinearly
splatted at the pointer) and also summarised as a vector (buttons, keys, wheel) that scales and
shifts every block (FiLM). A small U-Net (48x64 -> 24x32 -> 12x16 with self-attention over the 192
coarse cells, so a click can open a window far from the pointer) predicts a 4x4 block of
(gate, colour) per grid cell, unfolded back to pixels.

Ablation settings (``ncomp experiment desktop-levers``; the defaults are the design):

* ``injection`` -- where the action vector enters (the pointer maps always join the frames at the
  input, where the input happens): ``internal`` FiLM in every block; ``external`` FiLM on the stem's
  output only, before any block; ``contextual`` one token per history step joins the coarse
  self-attention as an extra key/value; ``residual`` a parallel branch whose zero-initialised
  projections add the action embedding after every block (a shift, no scale). The paper's four modes.
* ``actions`` -- ``raw`` events (buttons down/up/held, keys down/up, wheel) or ``meta``-actions (type,
  target and drag start, button/count/scroll, a hashed bag of the typed text); with ``meta`` the maps
  splat the meta-action's target and drag start instead of button down/up.
* ``cursor`` -- ``composited``: framebuffers are cursor-free and the runtime draws the arrow (exact);
  the others make the network draw it (every framebuffer read and predicted carries it): ``mask``
  keeps the pointer maps (a spatial reference, the paper's mask reference), ``position`` drops the maps
  and appends the pointer's (x, y) to each step's vector, ``fourier`` appends sin/cos features instead.
  The paper's cursor table: position 8.7%, + Fourier 13.5%, mask reference 98.7%.

Shapes: framebuffers ``(B, 3, H, W)`` float in [0, 1]; action maps ``(B, M * history, H/4, W/4)``
(``M`` = :func:`map_channels`); action vectors ``(B, history * F)`` (``F`` = :func:`vector_features`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from neuralcomputer.data.desktop.actions import BUTTONS, FrameActions, step_actions
from neuralcomputer.errors import NCError
from neuralcomputer.models.actions import META_TYPES, RAW_FEATURES, featurize

FOLD = 4  # pixels per grid cell side
OPEN_GATE = 30.0  # the gate logit of "always take the predicted colour" (the no-copy-prior ablation)
MAPS_PER_STEP = 3  # pointer, button down, button up (meta: pointer, target, drag start)
INJECTIONS = ("internal", "external", "contextual", "residual")
ACTION_KINDS = ("raw", "meta")
CURSOR_KINDS = ("composited", "mask", "position", "fourier")
LEARNED_CURSOR = ("mask", "position", "fourier")  # the network draws the arrow
OCTAVES = 8  # Fourier pointer features: sin and cos of x and y at 8 octaves
TEXT_HASH = 16  # meta: typed text or chord as a hashed bag of its characters
META_FEATURES = len(META_TYPES) + 4 + 6 + TEXT_HASH  # type one-hot, target + drag start, scalars, text


def map_channels(cursor: str = "composited") -> int:
    """Action maps per history step: none when the pointer is given only as numbers."""
    return 0 if cursor in ("position", "fourier") else MAPS_PER_STEP


def vector_features(actions: str = "raw", cursor: str = "composited") -> int:
    """Width of one history step's action vector."""
    base = RAW_FEATURES if actions == "raw" else META_FEATURES
    return base + {"position": 2, "fourier": 4 * OCTAVES}.get(cursor, 0)


def step_window(actions: list, target: int, history: int) -> list:
    """The step actions of the ``history`` steps ending at frame ``target``, oldest first (padded at 0)."""
    return [step_actions(actions, max(0, i - 1), max(0, i)) for i in range(target - history + 1, target + 1)]


def context_ids(target: int, context: int, memory: int = 0) -> list[int]:
    """The frames before ``target`` the model reads, oldest first, padded with frame 0: with ``memory``
    > 0, first the frame ``memory`` steps back (what a menu or window that closes now was covering),
    then the last ``context`` frames."""
    recent = [max(0, target - context + j) for j in range(context)]
    return ([max(0, target - memory)] if memory > 0 else []) + recent


def _splat(points: np.ndarray, weights: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``(B, K, 2)`` positions in [0, 1] splatted bilinearly with ``(B, K)`` weights -> ``(B, K, gh, gw)``."""
    b, k = points.shape[:2]
    gh, gw = grid
    out = np.zeros((b, k, gh, gw), np.float32)
    gx, gy = points[..., 0] * (gw - 1), points[..., 1] * (gh - 1)  # (B, K) continuous cell coordinates
    x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    fx, fy = gx - x0, gy - y0
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xs, ys = np.clip(x0 + dx, 0, gw - 1), np.clip(y0 + dy, 0, gh - 1)
            np.add.at(out, (bi, ki, ys, xs), wx * wy * weights)
    return out


def _meta_vectors(feats: dict[str, Any]) -> np.ndarray:
    """``featurize`` output (``max_meta=1``) -> ``(B, K, META_FEATURES)`` meta-action vectors."""
    b, k = feats["meta_type"].shape[:2]
    kind = feats["meta_type"][..., 0]  # (B, K), 0 = none
    onehot = np.zeros((b, k, len(META_TYPES)), np.float32)
    bi, ki = np.nonzero(kind)
    onehot[bi, ki, kind[bi, ki] - 1] = 1
    text = np.zeros((b, k, TEXT_HASH), np.float32)
    for i, t in enumerate(feats["meta_text"]):
        for ch in t:  # a stable hash (Python's str hash is salted per process)
            text[i // k, i % k, ord(ch) % TEXT_HASH] += 1.0 / max(len(t), 1)
    return np.concatenate([onehot, feats["meta_xy"][..., 0, :], feats["meta_scalar"][..., 0, :], text], -1)


def action_inputs(steps: Sequence[Sequence[FrameActions]], screen: tuple[int, int], grid: tuple[int, int],
                  actions: str = "raw", cursor: str = "composited") -> tuple[np.ndarray, np.ndarray]:
    """Action maps ``(B, M * K, gh, gw)`` and vectors ``(B, K * F)`` for ``K`` steps per example.

    ``steps[b]`` are the step actions (:func:`~neuralcomputer.data.desktop.actions.step_actions`) of the
    last K steps, oldest first, each with the pointer read back at the step's end. ``screen`` is
    (width, height) of the pointer's coordinates; ``grid`` (gh, gw) the map size. The pointer is
    splatted bilinearly (its sub-cell position survives), alone and scaled by "a button went down" /
    "a button went up" in that step (``actions="meta"``: at the meta-action's target and drag start).
    ``cursor`` ``position`` / ``fourier`` gives no maps (``M = 0``) and the pointer as numbers in the
    vector instead (see the module docstring).
    """
    feats = featurize(steps, *screen, max_meta=1)
    pointer, raw = feats["pointer"], feats["raw"]  # (B, K, 2) in [0, 1], (B, K, RAW)
    b, k = pointer.shape[:2]
    nb = len(BUTTONS)
    if actions == "raw":
        vectors = raw
        extra = [(pointer, raw[..., :nb].max(-1)), (pointer, raw[..., nb:2 * nb].max(-1))]  # down, up
    else:
        vectors = _meta_vectors(feats)
        present = (feats["meta_type"][..., 0] > 0).astype(np.float32)
        has_start = (feats["meta_type"][..., 0] == META_TYPES.index("drag") + 1).astype(np.float32)  # a drag
        extra = [(feats["meta_xy"][..., 0, :2], present), (feats["meta_xy"][..., 0, 2:], has_start)]
    if cursor == "position":
        vectors = np.concatenate([vectors, pointer], -1)
    elif cursor == "fourier":
        angles = pointer[..., None] * (2.0 ** np.arange(OCTAVES, dtype=np.float32) * np.pi)  # (B, K, 2, F)
        vectors = np.concatenate([vectors, np.concatenate([np.sin(angles), np.cos(angles)], -1).reshape(b, k, -1)], -1)
    if map_channels(cursor) == 0:
        maps = np.zeros((b, 0, *grid), np.float32)
    else:
        parts = [_splat(pointer, np.ones((b, k), np.float32), grid)] + [_splat(p, w, grid) for p, w in extra]
        maps = np.stack(parts, 2).reshape(b, k * MAPS_PER_STEP, *grid)  # per step: pointer, then the two
    return maps, vectors.astype(np.float32).reshape(b, -1)


class FiLMBlock(nn.Module):
    """Residual 3x3 conv block whose normalised activations are scaled and shifted by the action vector."""

    def __init__(self, channels: int, cond: int | None) -> None:
        """``cond`` None: a plain residual block (no FiLM; the injection modes outside the blocks)."""
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, channels, affine=cond is None)
        self.film = nn.Linear(cond, 2 * channels) if cond is not None else None
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``x`` ``(B, C, h, w)``, ``cond`` ``(B, cond)`` (None for a block built without FiLM)."""
        h = self.norm2(self.conv1(F.silu(self.norm1(x))))
        if self.film is not None:
            scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


class CoarseAttention(nn.Module):
    """Self-attention over all cells of the coarsest grid (global reach at 12x16 = 192 tokens)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, C, h, w)``; ``extra`` ``(B, A, C)`` tokens that join the keys and values only."""
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, h*w, C)
        keys = tokens if extra is None else torch.cat([tokens, extra], dim=1)
        out, _ = self.attn(tokens, keys, keys, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class DeskDeltaModel(nn.Module):
    """Next cursor-free framebuffer from the previous ones and the recent input (see module docstring)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        net = config["net"]
        h, w = config["height"], config["width"]
        if h % (FOLD * 4) or w % (FOLD * 4):
            raise NCError(f"DeskDelta needs a frame size divisible by {FOLD * 4}, got {w}x{h}")
        self.grid = (h // FOLD, w // FOLD)
        self.context = int(config["context_frames"])
        self.memory = int(config.get("memory", 0))
        self.history = int(config["history"])
        self.injection = config.get("injection", "internal")
        self.actions = config.get("actions", "raw")
        self.cursor = config.get("cursor", "composited")
        for key, value, allowed in (("injection", self.injection, INJECTIONS), ("actions", self.actions, ACTION_KINDS),
                                    ("cursor", self.cursor, CURSOR_KINDS)):
            if value not in allowed:
                raise NCError(f"DeskDelta {key}={value!r}: expected one of {', '.join(allowed)}")
        if self.injection == "contextual" and not net.get("attention", True):
            raise NCError("DeskDelta injection=contextual joins the coarse attention: needs attention=true")
        c0, c1, c2 = net["channels"]
        cond = net["cond_dim"]
        fold_in = 3 * FOLD * FOLD * (self.context + (self.memory > 0))
        step_features = vector_features(self.actions, self.cursor)
        self.cond = (nn.Sequential(nn.Linear(self.history * step_features, cond), nn.SiLU(), nn.Linear(cond, cond))
                     if self.injection != "contextual" else None)  # contextual: per-step tokens instead
        film = cond if self.injection == "internal" else None  # the blocks' FiLM width (None: no FiLM)
        self.stem = nn.Conv2d(fold_in + map_channels(self.cursor) * self.history, c0, 3, padding=1)
        if self.injection == "external":  # FiLM of the stem's output: the actions act before any block
            self.stem_film = nn.Linear(cond, 2 * c0)
            nn.init.zeros_(self.stem_film.weight)
            nn.init.zeros_(self.stem_film.bias)
        elif self.injection == "contextual":  # one token per history step, with its position in time
            self.tokens = nn.Linear(step_features, c2)
            self.token_pos = nn.Parameter(torch.zeros(1, self.history, c2))
        elif self.injection == "residual":  # zero-initialised shifts added after every block
            self.side = nn.ModuleList(nn.Linear(cond, c) for c in (c0, c1, c2, c1, c0))
            for lin in self.side:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        self.enc0 = nn.ModuleList(FiLMBlock(c0, film) for _ in range(net["blocks"]))
        self.down1 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.enc1 = nn.ModuleList(FiLMBlock(c1, film) for _ in range(net["blocks"]))
        self.down2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = nn.ModuleList(FiLMBlock(c2, film) for _ in range(net["blocks"]))
        self.attn = CoarseAttention(c2, net["heads"]) if net.get("attention", True) else None
        self.copy_prior = bool(config.get("copy_prior", True))
        self.pos = nn.Parameter(torch.zeros(1, c2, self.grid[0] // 4, self.grid[1] // 4))
        self.up2 = nn.Conv2d(c2 + c1, c1, 3, padding=1)
        self.dec1 = nn.ModuleList(FiLMBlock(c1, film) for _ in range(net["blocks"]))
        self.up1 = nn.Conv2d(c1 + c0, c0, 3, padding=1)
        self.dec0 = nn.ModuleList(FiLMBlock(c0, film) for _ in range(net["blocks"]))
        self.head = nn.Conv2d(c0, 4 * FOLD * FOLD, 3, padding=1)  # per pixel of the 4x4 block: gate + RGB
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():  # gate channels first in each pixel's 4: bias far negative = copy the frame
            bias = torch.zeros(4, FOLD * FOLD)
            bias[0] = config["gate_bias"]
            self.head.bias.copy_(bias.flatten())

    @property
    def window(self) -> int:
        """Frames back a step reaches, the new one included: its framebuffers and its input history
        (the runtime keeps the records and framebuffers of this many)."""
        return max(self.context, self.memory, self.history) + 1

    @property
    def learned_cursor(self) -> bool:
        """Whether the framebuffers this model reads and predicts carry the cursor (it draws the arrow)."""
        return self.cursor in LEARNED_CURSOR

    def inputs(self, steps: Sequence[Sequence[FrameActions]], screen: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """:func:`action_inputs` with this model's grid, action and cursor settings."""
        return action_inputs(steps, screen, self.grid, self.actions, self.cursor)

    def context_ids(self, target: int) -> list[int]:
        """The frames the step to ``target`` reads (:func:`context_ids` with this model's settings)."""
        return context_ids(target, self.context, self.memory)

    def forward(self, frames: torch.Tensor, maps: torch.Tensor, vectors: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``(B, K, 3, H, W)`` (oldest first), maps ``(B, M*history, gh, gw)``, vectors
        ``(B, history*F)`` (:meth:`inputs`) -> gate logits ``(B, 1, H, W)`` and colours ``(B, 3, H, W)`` (about [0, 1];
        :meth:`combine` clamps them when sampling)."""
        x = F.pixel_unshuffle(frames.flatten(1, 2) * 2 - 1, FOLD)  # (B, K*3*16, gh, gw)
        embedded = self.cond(vectors) if self.cond is not None else None
        inside = embedded if self.injection == "internal" else None  # the FiLM input of every block
        side = iter(self.side) if self.injection == "residual" else None

        def run(blocks: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
            for blk in blocks:
                h = blk(h, inside)
            if side is not None:  # residual injection: one zero-initialised shift per level
                h = h + next(side)(embedded)[:, :, None, None]
            return h

        h0 = self.stem(torch.cat([x, maps], dim=1))
        if self.injection == "external":
            scale, shift = self.stem_film(embedded)[:, :, None, None].chunk(2, dim=1)
            h0 = h0 * (1 + scale) + shift
        h0 = run(self.enc0, h0)
        h1 = run(self.enc1, self.down1(h0))
        h2 = run(self.mid, self.down2(h1) + self.pos)
        if self.attn is not None:
            extra = None
            if self.injection == "contextual":
                extra = self.tokens(vectors.view(vectors.shape[0], self.history, -1)) + self.token_pos
            h2 = self.attn(h2, extra)
        u1 = run(self.dec1, self.up2(torch.cat([F.interpolate(h2, size=h1.shape[-2:], mode="nearest"), h1], dim=1)))
        u0 = run(self.dec0, self.up1(torch.cat([F.interpolate(u1, size=h0.shape[-2:], mode="nearest"), h0], dim=1)))
        out = F.pixel_shuffle(self.head(F.silu(u0)), FOLD)  # (B, 4, H, W)
        if not self.copy_prior:  # ablation: the whole frame predicted, every pixel "changes"
            return torch.full_like(out[:, :1], OPEN_GATE), (out[:, 1:].tanh() + 1) / 2
        # a colour change relative to the previous pixel; not clamped here: a clamp has no gradient
        # outside [0, 1], and colours that overshot there stayed black or white for good (seen at 1,750
        # steps: colours further from the truth than the previous frame, even where nothing changes)
        return out[:, :1], frames[:, -1] + out[:, 1:]

    @staticmethod
    def combine(prev: torch.Tensor, gate_logits: torch.Tensor, colour: torch.Tensor, hard: bool,
                threshold: float = 0.0) -> torch.Tensor:
        """The next framebuffer: soft blend for training; for sampling an exact copy wherever the gate
        logit is at or below ``threshold`` (the config's ``gate_threshold``, chosen on validation data)."""
        if hard:
            return torch.where(gate_logits > threshold, colour.clamp(0, 1), prev)
        g = torch.sigmoid(gate_logits)
        return prev + g * (colour - prev)

    def save_pretrained(self, path: str | Path) -> None:
        """``config.json`` + ``deskdelta.safetensors`` in ``path`` (a self-contained, relocatable folder)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"kind": "guiworld-delta", "model": self.config}, indent=2))
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(path / "deskdelta.safetensors"))

    @staticmethod
    def halve_weights(path: str | Path) -> None:
        """Rewrite ``path``'s ``deskdelta.safetensors`` with its floating tensors as float16: half the
        bytes of a bundled model; :meth:`from_pretrained` loads them back into float32 parameters
        (a weight then differs from its float32 value by at most 2^-11 of itself)."""
        import os

        from safetensors.torch import load_file, save_file

        file = Path(path) / "deskdelta.safetensors"
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
        tmp = file.with_name(f".{file.name}.tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, file)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> DeskDeltaModel:
        from safetensors.torch import load_file

        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        if config.get("kind") != "guiworld-delta":
            raise NCError(f"{path}/config.json: kind {config.get('kind')!r}, expected 'guiworld-delta'")
        model = cls(config["model"])
        missing, unexpected = model.load_state_dict(load_file(str(path / "deskdelta.safetensors")), strict=False)
        if missing or unexpected:
            raise NCError(f"{path}: weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()
