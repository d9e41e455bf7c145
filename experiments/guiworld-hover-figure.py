"""A context menu opened where no training menu was, the pointer gliding down over it, with and without
``recall.hover`` (docs/results/guiworld-delta, "A hover at a new place").

Rolls ``models/guiworld-delta`` out from a bare desktop (the first frame of a ``datasets/desktop-eval``
random-slow episode) under made-up input, as a user at the browser gives it: a right-click at each of
the screen places ``--at`` (collector pixels, 512x384), the pointer 10 px right and then 4 px down a
frame for 24 frames, a rest, a left click, a rest. Writes one row per place, frames 10 to 34 every
fourth, the memory without ``hover`` above the one with it, and prints in how many of the 24 glide
frames the item under the pointer is lit (the theme's selection colour along 40 px or more of a row
within 3 px of the pointer's).

    .venv/bin/python experiments/guiworld-hover-figure.py docs/results/guiworld-delta/hover-menu.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from neuralcomputer.data.dataset import load_manifest
from neuralcomputer.data.desktop.actions import FrameActions
from neuralcomputer.data.desktop.episode import read_desktop_clip
from neuralcomputer.models.deskmemory import TransitionMemory
from neuralcomputer.pipelines.load import load_pipeline

SELECTION = (53, 132, 228)  # the theme's selection colour at the model's size
SHOWN = range(10, 35, 4)     # the frames drawn: the glide over the menu


def glide(x: int, y: int, fps: int) -> list[FrameActions]:
    """The made-up input (see the module docstring): 46 records."""
    records: list[FrameActions] = []

    def add(pointer: tuple[int, int], events: list[dict] | None = None) -> None:
        records.append(FrameActions(len(records), len(records) / fps, pointer, events or []))

    for _ in range(3):
        add((x, y))
    add((x, y), [{"type": "down", "button": 3}])
    add((x, y), [{"type": "up", "button": 3}])
    for _ in range(3):
        add((x, y))
    for _ in range(24):
        y += 4
        add((x + 10, y), [{"type": "move", "x": x + 10, "y": y}])
    for _ in range(3):
        add((x + 10, y))
    add((x + 10, y), [{"type": "down", "button": 1}])
    add((x + 10, y), [{"type": "up", "button": 1}])
    for _ in range(9):
        add((x + 10, y))
    return records


def lit_under(frame: np.ndarray, row: int) -> bool:
    """Whether a row of ``frame`` ``(H, W, 3)`` within 3 of ``row`` has 40 px or more of the selection colour
    (the item under the pointer lit)."""
    rows = (frame[max(0, row - 3):row + 4] == SELECTION).all(-1).sum(1)
    return bool((rows >= 40).any())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("--model", type=Path, default=Path("models/guiworld-delta"))
    ap.add_argument("--data", type=Path, default=Path("datasets/desktop-eval"))
    ap.add_argument("--at", nargs="+", default=["300,150", "120,200", "400,100"], help="right-click places x,y")
    args = ap.parse_args()
    roll = load_pipeline(args.model, recall="alone")
    record = next(r for r in load_manifest(args.data) if r.get("policy") == "random-slow")
    first = read_desktop_clip(args.data / record["path"], roll.size).frames(np.arange(1), cursor=False)[0]
    settings = roll.memory.settings
    arrays = roll.memory.arrays
    rows = []
    for at in args.at:
        x, y = (int(v) for v in at.split(","))
        for hover in (False, True):
            roll.memory = TransitionMemory(arrays, {**settings, "hover": hover})
            records = glide(x, y, roll.model.config["fps"])
            frames, _ = roll.rollout(first, records)
            under = [lit_under(frames[t], round(records[t].pointer[1] * roll.size[0] / roll.screen[1]))
                     for t in range(8, 32)]
            print(f"right-click at ({x}, {y}), hover {hover}: the item under the pointer lit in "
                  f"{sum(under)} of the 24 glide frames")
            rows.append(np.concatenate([frames[t] for t in SHOWN], 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
