"""Action encoders of GUIWorld: per-frame desktop actions -> action tokens.

Two encoders behind one interface (``encode(batch) -> (B, T * A, D)`` tokens, ``A`` per frame):

* :class:`RawActionEncoder` -- the events as sent to the X server: multi-hot of mouse buttons
  pressed/released/held, keys pressed/released (the :data:`~neuralcomputer.data.desktop.actions.KEY_VOCAB`
  slots), wheel steps and the pointer; one token per frame.
* :class:`MetaActionEncoder` -- the policy's meta-actions as typed slots: one token per meta-action
  (type embedding + target coordinates + button/count/scroll + the typed text or chord read by a
  byte-level text encoder) plus a pointer token per frame; ``max_meta`` slots per frame.

Coordinates are encoded ``raw`` (x/W, y/H in [0, 1]) or ``fourier`` (sin/cos at octave
frequencies, NeRF-style). Featurisation (:func:`featurize`) runs on plain Python action records,
outside the network, so data loaders can prepare batches in worker processes.

Legend: B batch, T frames of the window, A tokens per frame, D width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralcomputer.data.desktop.actions import BUTTONS, KEY_VOCAB, META_ACTIONS, FrameActions, key_slot
from neuralcomputer.errors import NCError
from neuralcomputer.models.text import ByteTextEncoder

META_TYPES = tuple(META_ACTIONS)  # type ids: index in this tuple; +1 so 0 means "empty slot"
TEXT_BYTES = 32  # typed text / chord bytes kept per meta-action (longer text: its first 32 bytes)
RAW_FEATURES = 3 * len(BUTTONS) + 2 * len(KEY_VOCAB) + 2  # down, up, held buttons; key down, key up; wheel


def coordinate_features(xy: torch.Tensor, kind: str, octaves: int) -> torch.Tensor:
    """``(..., 2)`` positions in [0, 1] -> ``(..., 2)`` (raw) or ``(..., 4 * octaves)`` (fourier)."""
    if kind == "raw":
        return xy
    if kind != "fourier":
        raise NCError(f"coords={kind!r}: expected raw or fourier")
    freqs = (2.0 ** torch.arange(octaves, device=xy.device, dtype=xy.dtype)) * math.pi  # (F,)
    angles = xy[..., None] * freqs  # (..., 2, F)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def coordinate_dim(kind: str, octaves: int) -> int:
    """Width of one encoded (x, y): 2 raw numbers, or sin and cos of each at ``octaves`` frequencies."""
    return 2 if kind == "raw" else 4 * octaves


def featurize(frames: Sequence[Sequence[FrameActions]], width: int, height: int, max_meta: int = 4) -> dict[str, Any]:
    """Both encoders' inputs for a batch of windows: ``frames[b][t]`` is frame t of window b.

    Returns numpy arrays: ``pointer`` (B, T, 2) in [0, 1]; ``raw`` (B, T, RAW_FEATURES);
    ``meta_type`` (B, T, M) int (0 = empty), ``meta_xy`` (B, T, M, 4) in [0, 1] (target and drag start),
    ``meta_scalar`` (B, T, M, 6) (button one-hot, count, dx, dy), and ``meta_text`` list (B*T*M) of str.
    Coordinates are scaled by the frame size the actions were logged at (``width``, ``height``).
    """
    b, t = len(frames), len(frames[0])
    nb, nk = len(BUTTONS), len(KEY_VOCAB)
    pointer = np.zeros((b, t, 2), np.float32)
    raw = np.zeros((b, t, RAW_FEATURES), np.float32)
    meta_type = np.zeros((b, t, max_meta), np.int64)
    meta_xy = np.zeros((b, t, max_meta, 4), np.float32)
    meta_scalar = np.zeros((b, t, max_meta, 6), np.float32)
    meta_text = [""] * (b * t * max_meta)
    scale = np.array([max(width - 1, 1), max(height - 1, 1)], np.float32)
    for i, window in enumerate(frames):
        if len(window) != t:
            raise NCError(f"action windows differ in length ({len(window)} vs {t})")
        held: set[int] = set()
        for j, f in enumerate(window):
            pointer[i, j] = np.clip(np.asarray(f.pointer, np.float32) / scale, 0, 1)
            row = raw[i, j]
            for e in f.events:
                kind = e["type"]
                if kind == "down":
                    row[e["button"] - 1] = 1
                    held.add(e["button"])
                elif kind == "up":
                    row[nb + e["button"] - 1] = 1
                    held.discard(e["button"])
                elif kind == "key_down":
                    row[3 * nb + key_slot(e["key"])] = 1
                elif kind == "key_up":
                    row[3 * nb + nk + key_slot(e["key"])] = 1
                elif kind == "scroll":
                    row[-2] += e["dx"] / 5.0  # a few wheel steps per frame at most: keep features ~1
                    row[-1] += e["dy"] / 5.0
            for button in held:
                row[2 * nb + button - 1] = 1
            for k, m in enumerate(f.meta[-max_meta:]):  # more than max_meta starting in one frame: keep the last
                meta_type[i, j, k] = META_TYPES.index(m["type"]) + 1
                if "x" in m:
                    meta_xy[i, j, k, :2] = np.clip(np.array([m["x"], m["y"]], np.float32) / scale, 0, 1)
                if "x0" in m:
                    meta_xy[i, j, k, 2:] = np.clip(np.array([m["x0"], m["y0"]], np.float32) / scale, 0, 1)
                if "button" in m:
                    meta_scalar[i, j, k, m["button"] - 1] = 1
                meta_scalar[i, j, k, 3] = m.get("count", 0)
                meta_scalar[i, j, k, 4] = m.get("dx", 0) / 5.0
                meta_scalar[i, j, k, 5] = m.get("dy", 0) / 5.0
                text = m.get("text") if m["type"] == "type" else "+".join(m.get("keys", []))
                meta_text[(i * t + j) * max_meta + k] = (text or "").encode()[:TEXT_BYTES].decode(errors="ignore")
    return {"pointer": pointer, "raw": raw, "meta_type": meta_type, "meta_xy": meta_xy,
            "meta_scalar": meta_scalar, "meta_text": meta_text}


def _mlp(d_in: int, d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d), nn.SiLU(), nn.Linear(d, d))


class RawActionEncoder(nn.Module):
    """Raw events + pointer -> one token per frame: ``(B, T, D)``.

    Args:
        dim: token width. coords: ``raw`` or ``fourier`` pointer encoding; octaves: Fourier octaves.
        max_frames: longest window (learned frame-position embedding).
    """

    def __init__(self, dim: int, coords: str = "fourier", octaves: int = 8, max_frames: int = 64) -> None:
        super().__init__()
        self.coords, self.octaves = coords, octaves
        self.net = _mlp(RAW_FEATURES + coordinate_dim(coords, octaves), dim)
        self.frame_pos = nn.Parameter(torch.randn(max_frames, dim) * 0.02)
        self.dim = dim

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        pointer = coordinate_features(feats["pointer"], self.coords, self.octaves)  # (B, T, P)
        x = self.net(torch.cat([feats["raw"], pointer], dim=-1))  # (B, T, D)
        return x + self.frame_pos[: x.shape[1]]


class MetaActionEncoder(nn.Module):
    """Meta-actions as typed slots + a pointer token per frame -> ``(B, T * (1 + M), D)``.

    Args:
        dim: token width. coords, octaves: coordinate encoding. max_meta: slots per frame.
        text_dim, text_layers: the byte-level encoder reading typed text and key chords.
    """

    def __init__(self, dim: int, coords: str = "fourier", octaves: int = 8, max_meta: int = 4,
                 max_frames: int = 64, text_dim: int = 64, text_layers: int = 1) -> None:
        super().__init__()
        self.coords, self.octaves, self.max_meta, self.dim = coords, octaves, max_meta, dim
        c = coordinate_dim(coords, octaves)
        self.type_embed = nn.Embedding(len(META_TYPES) + 1, dim)
        self.slot = _mlp(2 * c + 6, dim)
        self.pointer = _mlp(c, dim)
        self.text = ByteTextEncoder(text_dim=text_dim, layers=text_layers, heads=2, max_len=TEXT_BYTES)
        self.text_proj = nn.Linear(text_dim, dim)
        self.frame_pos = nn.Parameter(torch.randn(max_frames, dim) * 0.02)

    def _text(self, texts: list[str], device: torch.device) -> torch.Tensor:
        """Mean of the byte encoder's outputs over each text (zeros for no text): ``(N, text_dim)``."""
        out = torch.zeros(len(texts), self.text.text_dim, device=device)
        have = [i for i, s in enumerate(texts) if s]
        if have:
            enc = self.text.encode([texts[i] for i in have])  # (n, L, text_dim), padding zeroed
            lengths = torch.tensor([len(texts[i].encode()) for i in have], device=device).clamp(min=1)
            out[have] = enc.sum(1) / lengths[:, None]
        return out

    def forward(self, feats: dict[str, Any]) -> torch.Tensor:
        mt = feats["meta_type"]  # (B, T, M)
        b, t, m = mt.shape
        xy = coordinate_features(feats["meta_xy"].unflatten(-1, (2, 2)), self.coords, self.octaves).flatten(-2)
        slots = self.type_embed(mt) + self.slot(torch.cat([xy, feats["meta_scalar"]], dim=-1))  # (B, T, M, D)
        text = self._text(feats["meta_text"], mt.device).view(b, t, m, -1)
        slots = slots + self.text_proj(text)
        slots = slots * (mt > 0)[..., None]  # empty slots carry nothing
        pointer = self.pointer(coordinate_features(feats["pointer"], self.coords, self.octaves))  # (B, T, D)
        tokens = torch.cat([pointer[:, :, None], slots], dim=2) + self.frame_pos[:t, None]  # (B, T, 1+M, D)
        return tokens.flatten(1, 2)


def build_action_encoder(cfg: dict[str, Any], dim: int, max_frames: int) -> nn.Module:
    """The encoder named by ``cfg["encoder"]`` (``raw`` or ``meta``)."""
    kind = cfg.get("encoder", "meta")
    coords, octaves = cfg.get("coords", "fourier"), cfg.get("octaves", 8)
    if kind == "raw":
        return RawActionEncoder(dim, coords, octaves, max_frames)
    if kind == "meta":
        return MetaActionEncoder(dim, coords, octaves, cfg.get("max_meta", 4), max_frames)
    raise NCError(f"actions.encoder={kind!r}: expected raw or meta")


def features_to_tensors(feats: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, Any]:
    """numpy features from :func:`featurize` -> tensors on ``device`` (texts stay a list)."""
    return {k: (torch.as_tensor(v).to(device) if isinstance(v, np.ndarray) else v) for k, v in feats.items()}
