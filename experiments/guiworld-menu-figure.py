"""A context menu in a held-out episode, the model with and without some recall settings
(docs/results/guiworld-delta, "A menu at a new place, a click that opens later" and "A menu opened
with something else, a key that closes it").

Rolls the bundled ``models/guiworld-delta`` out from the first frame of a val episode under its true
actions (31 frames) and writes one row per chosen frame: the true frame, the model with the ``--off``
settings, the model as bundled. By default ``desktop-scripted-s1-00003`` (a right-click on the
desktop, the pointer down to *Open Terminal Here*, a click, ``date`` typed) without ``follow`` and
``press_patch``:

    .venv/bin/python experiments/guiworld-menu-figure.py docs/results/guiworld-delta/menu-terminal.png
    .venv/bin/python experiments/guiworld-menu-figure.py docs/results/guiworld-delta/menu-escape.png \
        --episode desktop-scripted-s1-00015 --off "popup_parts=false;shown_keys=false" --frames 1,9,16,23,27,30
    .venv/bin/python experiments/guiworld-menu-figure.py docs/results/guiworld-delta/nothing-evidence.png \
        --off "" --on "nothing_evidence=true" --frames 9,16,21,22,24,30
    .venv/bin/python experiments/guiworld-menu-figure.py docs/results/guiworld-delta/blank-caret.png \
        --start 352 --off "blank_caret=0" --frames 0,1,3,8,15

``--on`` adds settings to the right column (a setting not shipped), ``--off`` to the middle one;
``--start`` is the episode's frame the rollout starts from (its frame 0 in ``--frames``). ``--hold-out``
rebuilds the memory without the episode (a training episode, as a fold of ``ncomp experiment
desktop-recall`` holds it out; about a minute), from the train episodes of ``--data`` and ``--extra-data``:

    .venv/bin/python experiments/guiworld-menu-figure.py docs/results/guiworld-delta/first-letter.png \
        --episode desktop-random-slow-s1-00008 --start 411 --hold-out --extra-data datasets/desktop-more \
        --off "letter_kinds=false" --frames 0,1,2,9,15
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
from neuralcomputer.experiments.desktop_recall import parse_setting
from neuralcomputer.models.deskmemory import TransitionMemory
from neuralcomputer.pipelines.load import load_pipeline
from neuralcomputer.train.deskdelta import episode_sources, sources_memory

FRAMES = (9, 16, 19, 21, 24, 30)  # menu open, item lit, menu closed, terminal open, typing, typed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("--model", type=Path, default=Path("models/guiworld-delta"))
    ap.add_argument("--data", type=Path, default=Path("datasets/desktop"))
    ap.add_argument("--episode", default="desktop-scripted-s1-00003")
    ap.add_argument("--off", default="follow=0;press_patch=0",
                    help="the settings of the middle column, key=value;key=value (default: %(default)s)")
    ap.add_argument("--on", default="",
                    help="settings added to the model's for the right column, key=value;key=value (default: none)")
    ap.add_argument("--frames", default=",".join(map(str, FRAMES)), help="the frames shown, one row each")
    ap.add_argument("--start", type=int, default=0, help="the episode's frame the 31-frame rollout starts from")
    ap.add_argument("--hold-out", action="store_true", help="the memory rebuilt without the episode")
    ap.add_argument("--extra-data", type=Path, action="append", default=[],
                    help="with --hold-out: another dataset whose train episodes join the memory (repeatable)")
    args = ap.parse_args()
    roll = load_pipeline(args.model, recall="alone")
    if args.hold_out:
        base = roll.memory.settings
        sources = episode_sources([args.data, *args.extra_data], roll.model.config, Path("reports"))
        roll.memory = sources_memory([src for src in sources if src[1]["id"] != args.episode], roll.size,
                                     roll.screen, base)
    record = next(r for r in load_manifest(args.data) if r["id"] == args.episode)
    clip = read_desktop_clip(args.data / record["path"], roll.size)
    frames = np.arange(args.start, args.start + 31)
    shown, fbs = clip.frames(frames), clip.frames(frames, cursor=False)
    actions = read_actions(args.data / record["actions"], float(record["fps"]))[args.start:args.start + 31]
    bundled = roll.memory
    settings = bundled.settings
    columns = [shown]
    off, on = parse_setting("off:" + args.off)[1], parse_setting("on:" + args.on)[1]
    right = TransitionMemory(bundled.arrays, {**settings, **on}) if on else bundled
    for name, memory in (("off", TransitionMemory(bundled.arrays, {**settings, **off})),
                         ("on" if on else "bundled", right)):
        roll.memory = memory
        pred, _ = roll.rollout(fbs[0], actions)
        print(f"{name}: rollout SSIM over 31 frames {ssim(pred[1:], shown[1:]):.3f}")
        columns.append(pred)
    rows = [np.concatenate([c[int(t)] for c in columns], 1) for t in args.frames.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
