"""A recorded desktop episode read back for training and evaluation: frames (as recorded and resized)
and the per-frame actions. Shapes: frames ``(T, H, W, 3)`` uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralcomputer.data.dataset import read_clip_payload
from neuralcomputer.data.desktop.actions import FrameActions, read_actions
from neuralcomputer.data.torch_dataset import resize_frames


def load_episode(root: str | Path, record: dict, frames: int, size: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """The first ``frames`` frames of a desktop episode and their action records.

    Returns ``(recorded, resized, actions)``: frames ``(T, H0, W0, 3)`` as recorded, the same resized to
    ``size`` = (H, W), and ``T`` :class:`FrameActions` (T = ``frames`` or the episode's length).
    """
    root = Path(root)
    recorded = read_clip_payload(root / record["path"])["frames"][:frames]
    actions = read_actions(root / record["actions"], float(record["fps"]))[:frames]
    return recorded, resize_frames(recorded, *size), actions
