"""Typing at the bundled desktop as the web page sends it, before and with the typing settings.

    .venv/bin/python experiments/guiworld-typing-figure.py docs/results/guiworld-delta/typing-once.png

Opens a terminal from the Applications menu (a click, the menu's *Terminal Emulator* item), then types
``ls -l``, Return and ``echo hello`` at a key every third frame, each key's press and release in one
frame (``NeuralComputer.step`` frame records, as ``runtime/static/app.js`` sends them). Writes the
terminal's top rows (2x) after each of the three: the top row with ``typing_once``,
``typing_candidates`` and ``lowest_caret`` off (the model before them), the bottom row as bundled.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from neuralcomputer.runtime.computer import NeuralComputer

MODEL = Path(__file__).resolve().parents[1] / "models" / "guiworld-delta"
BEFORE = {"typing_once": False, "typing_candidates": 1, "lowest_caret": False}
KEYS = {" ": "space", "\n": "Return"}


def session(settings: dict[str, Any]) -> np.ndarray:
    """The three terminal crops ``(76, 3 * 160, 3)`` uint8 of one session with recall ``settings``."""
    desk = NeuralComputer.load(MODEL)
    desk.backend.memory.config.update(settings)
    desk.reset()
    idle = {"type": "frame", "events": [], "meta": [], "pointer": [80, 44]}
    desk.step({"type": "click", "x": 30, "y": 7, "button": 1, "count": 1})  # Applications
    for _ in range(8):
        desk.step({**idle, "pointer": [30, 7]})
    desk.step({"type": "move", "x": 80, "y": 44})
    desk.step({"type": "click", "x": 80, "y": 44, "button": 1, "count": 1})  # Terminal Emulator
    for _ in range(25):
        desk.step(idle)
    shots = []
    for text in ("ls -l", "\n", "echo hello"):
        for char in text:
            key = KEYS.get(char, char)
            desk.step({**idle, "events": [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}]})
            for _ in range(2):
                frame = desk.step(idle).frames[-1]
        for _ in range(12 if text == "\n" else 0):  # the command's answer takes a few frames
            frame = desk.step(idle).frames[-1]
        shots.append(frame[24:100, :160])
    return np.concatenate(shots, axis=1)


def main(out: str) -> None:
    rows = np.concatenate([session(BEFORE), session({})], axis=0)
    Image.fromarray(rows).resize((rows.shape[1] * 2, rows.shape[0] * 2), Image.NEAREST).save(out)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "typing-once.png")
