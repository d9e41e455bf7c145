"""Tiny, untrained terminal and desktop models saved as model directories, for runtime and server tests.

Untrained weights render noise, but every code path (encode, denoise, decode, state, streaming) runs
for real and fast: what the runtime tests need. Quality is the shipped models' business.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuralcomputer.models.cligen import CLIGenModel
from neuralcomputer.models.guiworld import GUIWorldModel
from tests.cligen_helpers import tiny_config
from tests.guiworld_helpers import tiny_gui_config


def tiny_terminal_model(path: Path, seed: int = 0, extra: list[str] | None = None) -> Path:
    """A 40x8-cell (320x136) CLIGen model directory with random weights; 2 sampling steps.

    ``extra``: more config overrides (e.g. ``max_len=400``, the caption limit in bytes)."""
    torch.manual_seed(seed)
    cfg = tiny_config(extra=["sample_steps=2", *(extra or [])])["model"]
    CLIGenModel(cfg).save_pretrained(path)
    return path


def tiny_desktop_model(path: Path, seed: int = 0, stride: int = 1) -> Path:
    """A 64x48 GUIWorld model directory (screen 128x96) with random weights; 2 sampling steps.

    ``stride`` > 1 generates every stride-th frame (``frame_stride``).
    """
    torch.manual_seed(seed)
    cfg = tiny_gui_config(["sample_steps=2", f"frame_stride={stride}"])["model"]
    GUIWorldModel({**cfg, "screen": [128, 96]}).save_pretrained(path)
    return path


def replay_live(model_dir: Path, first: np.ndarray, records: list) -> list[np.ndarray]:
    """The frames a runtime session of ``model_dir`` shows when fed ``records`` (desktop action records)
    one step at a time from ``first``: to compare bit for bit with the offline rollout of the same."""
    from neuralcomputer.runtime.computer import NeuralComputer

    c = NeuralComputer.load(model_dir)
    c.reset(first, pointer=records[0].pointer)
    live = [c.frame]
    for r, nxt in zip(records[:-1], records[1:], strict=True):
        live.append(c.step({"type": "frame", "events": r.events, "meta": r.meta,
                            "pointer": list(nxt.pointer)}).frames[-1])
    return live
