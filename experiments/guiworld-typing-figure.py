"""Typing at the bundled desktop as the web page sends it, before and with the typing settings.

    .venv/bin/python experiments/guiworld-typing-figure.py docs/results/guiworld-delta/typing-once.png
    .venv/bin/python experiments/guiworld-typing-figure.py docs/results/guiworld-delta/typing-speeds.png --speeds
    .venv/bin/python experiments/guiworld-typing-figure.py docs/results/guiworld-delta/terminal-returns.png --returns

Opens a terminal from the Applications menu (a click, the menu's *Terminal Emulator* item), then types
``ls -l``, Return and ``echo hello``, each key's press and release in one frame (``NeuralComputer.step``
frame records, as ``runtime/static/app.js`` sends them). Writes the terminal's top rows (2x) after
each of the three. ``typing-once.png``: a key every third frame, the top row with ``typing_once``,
``typing_candidates`` and ``lowest_caret`` off (the model before them), the bottom row with them.
``--speeds``: a pair of rows per speed (a key every frame, every second, every third frame), the
model before ``typing_early``, ``typing_kind``, ``typing_caret`` and ``loose_rms`` (top), with them
(bottom), three more frames after each command. ``--returns``: ten commands, each with Return (a key
every second frame, 8 frames after each), the terminal after the 1st, 4th, 7th and 10th; the top row
without ``named_keys``, ``moved_caret``, ``missed_change``, ``caret_rows`` and ``terminal_glyphs``, the
bottom row as bundled.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from neuralcomputer.runtime.computer import NeuralComputer

MODEL = Path(__file__).resolve().parents[1] / "models" / "guiworld-delta"
# the settings of this page's "Typing as a person types" and "Typing at any speed", on and off
ONCE = {"typing_once": True, "typing_candidates": 8, "lowest_caret": True}
NO_ONCE = {"typing_once": False, "typing_candidates": 1, "lowest_caret": False}
EARLY = {"typing_early": True, "typing_kind": True, "typing_caret": True, "loose_rms": 30.0}
NO_EARLY = {"typing_early": False, "typing_kind": False, "typing_caret": False, "loose_rms": 0.0}
NO_RETURNS = {"named_keys": 0, "moved_caret": False, "missed_change": False, "caret_rows": False,
              "terminal_glyphs": False}
KEYS = {" ": "space", "\n": "Return"}


def terminal(settings: dict[str, Any]) -> tuple[NeuralComputer, dict[str, Any]]:
    """The bundled desktop with recall ``settings`` after Applications, *Terminal Emulator* and 25 quiet
    frames, and the quiet frame record it is stepped with."""
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
    return desk, idle


def session(settings: dict[str, Any], every: int = 3, settle: int = 0) -> np.ndarray:
    """The three terminal crops ``(76, 3 * 160, 3)`` uint8 of one session with recall ``settings``, a
    key every ``every`` frames, ``settle`` more frames after each command (12 after Return)."""
    desk, idle = terminal(settings)
    shots = []
    for text in ("ls -l", "\n", "echo hello"):
        for char in text:
            key = KEYS.get(char, char)
            frame = desk.step({**idle, "events": [{"type": "key_down", "key": key},
                                                  {"type": "key_up", "key": key}]}).frames[-1]
            for _ in range(every - 1):
                frame = desk.step(idle).frames[-1]
        for _ in range(12 if text == "\n" else settle):  # the command's answer takes a few frames
            frame = desk.step(idle).frames[-1]
        shots.append(frame[24:100, :160])
    return np.concatenate(shots, axis=1)


COMMANDS = ("ls -l", "echo hi", "pwd", "date", "ls", "echo a", "cd", "ls", "whoami", "pwd")


def returns(settings: dict[str, Any]) -> np.ndarray:
    """The terminal crops ``(168, 4 * 160, 3)`` uint8 after the 1st, 4th, 7th and 10th of ten commands,
    each typed with its Return (a key every second frame, 8 quiet frames after), recall ``settings``."""
    desk, idle = terminal(settings)
    shots = []
    for n, text in enumerate(COMMANDS, start=1):
        for char in text + "\n":
            key = KEYS.get(char, char)
            desk.step({**idle, "events": [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}]})
            desk.step(idle)
        frame = [desk.step(idle).frames[-1] for _ in range(8)][-1]
        if n in (1, 4, 7, 10):
            shots.append(frame[24:192, :160])
    return np.concatenate(shots, axis=1)


def main(out: str, speeds: bool = False, with_returns: bool = False) -> None:
    if with_returns:
        rows = np.concatenate([returns(NO_RETURNS), returns({})], axis=0)
    elif speeds:
        pairs = [(session({**ONCE, **NO_EARLY}, every, 3), session({**ONCE, **EARLY}, every, 3)) for every in (1, 2, 3)]
        rows = np.concatenate([row for pair in pairs for row in pair], axis=0)
    else:
        rows = np.concatenate([session({**NO_ONCE, **NO_EARLY}), session({**ONCE, **NO_EARLY})], axis=0)
    Image.fromarray(rows).resize((rows.shape[1] * 2, rows.shape[0] * 2), Image.NEAREST).save(out)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "typing-once.png", "--speeds" in sys.argv[2:], "--returns" in sys.argv[2:])
