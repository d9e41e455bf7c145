"""The context menu's *Open Terminal Here* in a held-out episode, with and without ``follow`` and
``press_patch`` (docs/results/guiworld-delta, "A menu at a new place, a click that opens later").

Rolls the bundled ``models/guiworld-delta`` out from the first frame of the val episode
``desktop-scripted-s1-00003`` under its true actions (31 frames: a right-click on the desktop, the
pointer down to *Open Terminal Here*, a click, ``date`` typed) and writes one row per chosen frame:
the true frame, the model without the two settings, the model as bundled.

    .venv/bin/python experiments/guiworld-menu-figure.py docs/results/guiworld-delta/menu-terminal.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from neuralcomputer.data.dataset import load_manifest
from neuralcomputer.data.desktop.actions import read_actions
from neuralcomputer.data.desktop.episode import read_desktop_clip
from neuralcomputer.eval.image_metrics import ssim
from neuralcomputer.models.deskmemory import TransitionMemory
from neuralcomputer.pipelines.load import load_pipeline

FRAMES = (9, 16, 19, 21, 24, 30)  # menu open, item lit, menu closed, terminal open, typing, typed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("--model", type=Path, default=Path("models/guiworld-delta"))
    ap.add_argument("--data", type=Path, default=Path("datasets/desktop"))
    ap.add_argument("--episode", default="desktop-scripted-s1-00003")
    args = ap.parse_args()
    roll = load_pipeline(args.model, recall="alone")
    record = next(r for r in load_manifest(args.data) if r["id"] == args.episode)
    clip = read_desktop_clip(args.data / record["path"], roll.size)
    frames = np.arange(31)
    shown, fbs = clip.frames(frames), clip.frames(frames, cursor=False)
    actions = read_actions(args.data / record["actions"], float(record["fps"]))[:31]
    bundled = roll.memory
    settings = {k: v for k, v in bundled.config.items() if k != "mode"}
    columns = [shown]
    for name, memory in (("before", TransitionMemory(bundled.arrays, {**settings, "follow": 0, "press_patch": 0.0})),
                         ("bundled", bundled)):
        roll.memory = memory
        pred, _ = roll.rollout(fbs[0], actions)
        print(f"{name}: rollout SSIM over 31 frames {ssim(pred[1:], shown[1:]):.3f}")
        columns.append(pred)
    rows = [np.concatenate([c[t] for c in columns], 1) for t in FRAMES]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
