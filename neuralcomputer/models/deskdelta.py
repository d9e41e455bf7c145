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

Shapes: framebuffers ``(B, 3, H, W)`` float in [0, 1]; action maps ``(B, 3 * history, H/4, W/4)``;
action vectors ``(B, history * RAW_FEATURES)``.
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
from neuralcomputer.models.actions import RAW_FEATURES, featurize

FOLD = 4  # pixels per grid cell side
OPEN_GATE = 30.0  # the gate logit of "always take the predicted colour" (the no-copy-prior ablation)
MAPS_PER_STEP = 3  # pointer, button down, button up


def step_window(actions: list, target: int, history: int) -> list:
    """The step actions of the ``history`` steps ending at frame ``target``, oldest first (padded at 0)."""
    return [step_actions(actions, max(0, i - 1), max(0, i)) for i in range(target - history + 1, target + 1)]


def context_ids(target: int, context: int, memory: int = 0) -> list[int]:
    """The frames before ``target`` the model reads, oldest first, padded with frame 0: with ``memory``
    > 0, first the frame ``memory`` steps back (what a menu or window that closes now was covering),
    then the last ``context`` frames."""
    recent = [max(0, target - context + j) for j in range(context)]
    return ([max(0, target - memory)] if memory > 0 else []) + recent


def action_inputs(steps: Sequence[Sequence[FrameActions]], screen: tuple[int, int], grid: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Action maps ``(B, 3 * K, gh, gw)`` and vectors ``(B, K * RAW_FEATURES)`` for ``K`` steps per example.

    ``steps[b]`` are the step actions (:func:`~neuralcomputer.data.desktop.actions.step_actions`) of the
    last K steps, oldest first, each with the pointer read back at the step's end. ``screen`` is
    (width, height) of the pointer's coordinates; ``grid`` (gh, gw) the map size. The pointer is
    splatted bilinearly (its sub-cell position survives), alone and scaled by "a button went down" /
    "a button went up" in that step.
    """
    feats = featurize(steps, *screen, max_meta=1)
    pointer, raw = feats["pointer"], feats["raw"]  # (B, K, 2) in [0, 1], (B, K, RAW)
    b, k = pointer.shape[:2]
    gh, gw = grid
    nb = len(BUTTONS)
    maps = np.zeros((b, k, MAPS_PER_STEP, gh, gw), np.float32)
    gx, gy = pointer[..., 0] * (gw - 1), pointer[..., 1] * (gh - 1)  # (B, K) continuous cell coordinates
    x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    fx, fy = gx - x0, gy - y0
    weight = {"down": raw[..., :nb].max(-1), "up": raw[..., nb:2 * nb].max(-1)}  # (B, K)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xs, ys = np.clip(x0 + dx, 0, gw - 1), np.clip(y0 + dy, 0, gh - 1)
            w = wx * wy  # (B, K)
            bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
            for m, scale in enumerate((1.0, weight["down"], weight["up"])):
                np.add.at(maps, (bi, ki, m, ys, xs), w * scale)
    return maps.reshape(b, k * MAPS_PER_STEP, gh, gw), raw.reshape(b, k * RAW_FEATURES)


class FiLMBlock(nn.Module):
    """Residual 3x3 conv block whose normalised activations are scaled and shifted by the action vector."""

    def __init__(self, channels: int, cond: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, channels, affine=False)
        self.film = nn.Linear(cond, 2 * channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


class CoarseAttention(nn.Module):
    """Self-attention over all cells of the coarsest grid (global reach at 12x16 = 192 tokens)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, h*w, C)
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
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
        c0, c1, c2 = net["channels"]
        cond = net["cond_dim"]
        fold_in = 3 * FOLD * FOLD * (self.context + (self.memory > 0))
        self.cond = nn.Sequential(nn.Linear(self.history * RAW_FEATURES, cond), nn.SiLU(), nn.Linear(cond, cond))
        self.stem = nn.Conv2d(fold_in + MAPS_PER_STEP * self.history, c0, 3, padding=1)
        self.enc0 = nn.ModuleList(FiLMBlock(c0, cond) for _ in range(net["blocks"]))
        self.down1 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.enc1 = nn.ModuleList(FiLMBlock(c1, cond) for _ in range(net["blocks"]))
        self.down2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = nn.ModuleList(FiLMBlock(c2, cond) for _ in range(net["blocks"]))
        self.attn = CoarseAttention(c2, net["heads"]) if net.get("attention", True) else None
        self.copy_prior = bool(config.get("copy_prior", True))
        self.pos = nn.Parameter(torch.zeros(1, c2, self.grid[0] // 4, self.grid[1] // 4))
        self.up2 = nn.Conv2d(c2 + c1, c1, 3, padding=1)
        self.dec1 = nn.ModuleList(FiLMBlock(c1, cond) for _ in range(net["blocks"]))
        self.up1 = nn.Conv2d(c1 + c0, c0, 3, padding=1)
        self.dec0 = nn.ModuleList(FiLMBlock(c0, cond) for _ in range(net["blocks"]))
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

    def context_ids(self, target: int) -> list[int]:
        """The frames the step to ``target`` reads (:func:`context_ids` with this model's settings)."""
        return context_ids(target, self.context, self.memory)

    def forward(self, frames: torch.Tensor, maps: torch.Tensor, vectors: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``(B, K, 3, H, W)`` (oldest first), maps ``(B, 3*history, gh, gw)``, vectors
        ``(B, history*RAW)`` -> gate logits ``(B, 1, H, W)`` and colours ``(B, 3, H, W)`` (about [0, 1];
        :meth:`combine` clamps them when sampling)."""
        b, k = frames.shape[:2]
        x = F.pixel_unshuffle(frames.flatten(1, 2) * 2 - 1, FOLD)  # (B, K*3*16, gh, gw)
        cond = self.cond(vectors)
        h0 = self.stem(torch.cat([x, maps], dim=1))
        for blk in self.enc0:
            h0 = blk(h0, cond)
        h1 = self.down1(h0)
        for blk in self.enc1:
            h1 = blk(h1, cond)
        h2 = self.down2(h1) + self.pos
        for blk in self.mid:
            h2 = blk(h2, cond)
        if self.attn is not None:
            h2 = self.attn(h2)
        u1 = self.up2(torch.cat([F.interpolate(h2, size=h1.shape[-2:], mode="nearest"), h1], dim=1))
        for blk in self.dec1:
            u1 = blk(u1, cond)
        u0 = self.up1(torch.cat([F.interpolate(u1, size=h0.shape[-2:], mode="nearest"), h0], dim=1))
        for blk in self.dec0:
            u0 = blk(u0, cond)
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
