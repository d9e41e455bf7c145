"""PyTorch view of a clip dataset, for training.

Kept apart from :mod:`neuralcomputer.data.dataset` so that data tools do not import torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from neuralcomputer.data.dataset import SPLITS, load_manifest, read_clip_payload
from neuralcomputer.errors import NCError


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(T, 3, H, W)`` float32 in [0, 1] (a copy: the input may be read-only)."""
    return torch.from_numpy(np.array(frames, copy=True)).permute(0, 3, 1, 2).float().div_(255.0)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-resize ``(T, H, W, 3)`` uint8 frames to ``(T, height, width, 3)`` (unchanged if already that size)."""
    if frames.shape[1:3] == (height, width):
        return frames
    out = np.empty((len(frames), height, width, 3), np.uint8)
    for i in range(0, len(frames), 64):  # in chunks: a long episode at full size is gigabytes as floats
        x = torch.from_numpy(np.array(frames[i:i + 64])).permute(0, 3, 1, 2).float()  # a copy: may be read-only
        y = torch.nn.functional.interpolate(x, size=(height, width), mode="area")
        out[i:i + 64] = y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


class ClipDataset(Dataset):
    """Clips of one split, as tensors.

    Args:
        root: dataset directory (made by ``ncomp data render``).
        split: ``train``, ``val``, ``test`` or ``None`` for all.
        tier: caption tier returned as ``caption``.
        num_frames: frames per item; longer clips are cut from the start, shorter ones padded by
            repeating the last frame (``valid`` marks real frames). ``None`` keeps each clip's length.

    Items are dicts: ``frames`` ``(T, 3, H, W)`` float32 in [0, 1]; ``valid`` ``(T,)`` bool;
    ``caption`` str; ``text`` list of T screen texts; ``id`` str.
    """

    def __init__(self, root: str | Path, split: str | None = "train", tier: str = "detailed",
                 num_frames: int | None = None) -> None:
        if split is not None and split not in SPLITS:
            raise NCError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        if tier not in ("semantic", "regular", "detailed"):
            raise NCError(f"unknown caption tier {tier!r}")
        self.root = Path(root)
        self.records = [r for r in load_manifest(self.root) if split is None or r["split"] == split]
        self.tier = tier
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        record = self.records[i]
        payload = read_clip_payload(self.root / record["path"])
        frames = payload["frames"]  # (T, H, W, 3) uint8
        texts = [str(t) for t in payload["text"]]
        valid = np.ones(len(frames), dtype=bool)
        if self.num_frames is not None:
            t = self.num_frames
            if len(frames) >= t:
                frames, texts, valid = frames[:t], texts[:t], valid[:t]
            else:
                pad = t - len(frames)
                frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
                texts = texts + [texts[-1]] * pad
                valid = np.concatenate([valid, np.zeros(pad, dtype=bool)])
        tensor = frames_to_tensor(frames)
        return {"frames": tensor, "valid": torch.from_numpy(valid), "caption": record["captions"][self.tier],
                "text": texts, "id": record["id"]}



def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` in [0, 1] -> ``(T, H, W, 3)`` uint8 (rounded)."""
    return frames.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
