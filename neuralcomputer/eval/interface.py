"""The one small interface evaluation, probes and reports use to drive any model.

A model under evaluation is anything with a ``generate`` method (the CLIGen model of a later issue,
a ``NeuralComputer`` runtime, or a stand-in). Stand-ins with known scores live here too, so the
instruments can be tested before any model exists.

Shapes: frames are ``(T, H, W, 3)`` uint8; a first frame is ``(H, W, 3)`` uint8.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ClipGenerator(Protocol):
    """Generates a clip from a first frame and a caption (the CLIGen task)."""

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        """Return ``(num_frames, H, W, 3)`` uint8 frames whose frame 0 continues ``first_frame``."""
        ...
